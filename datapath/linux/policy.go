package linux

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// policyState is what the backend enforces of security groups
// (policy_nft.go has the table's layout).
type policyState struct {
	// mu orders the changes of the table: one at a time, each from what
	// the one before left.
	mu sync.Mutex
	// policy is the last one SetPolicy took.
	policy model.Policy
	// ports are the addresses of this host's attached ports, by name: a
	// port's elements exist while it is attached.
	ports map[string]netip.Addr
	// primed: Prune ran, and every change since is sent. Before, a
	// previous run's table stays in force, and only what is missing is
	// added (grown).
	primed bool
	// held is the table as the kernel holds it, known or nil; a change
	// that failed makes it unknown, and the next reads the kernel first.
	held *policyTable
}

// SetPolicy implements datapath.PolicyEnforcer. A membership change is
// one netlink batch of set elements; a change of rules is one `nft -f`
// that carries the elements' changes too (policyScript). An equal policy
// sends nothing. A policy that guards a port is refused while bridged
// traffic skips the table (judgeable) — unless it is the one in force,
// which a refused change's rollback hands back.
func (b *Backend) SetPolicy(ctx context.Context, p model.Policy) error {
	b.sg.mu.Lock()
	defer b.sg.mu.Unlock()
	if err := b.judgeable(p); err != nil && !p.Equal(b.sg.policy) {
		return fmt.Errorf("security groups: %w", err)
	}
	b.sg.policy = p
	if err := b.syncPolicy(ctx); err != nil {
		return fmt.Errorf("security groups: %w", err)
	}
	return nil
}

// enforced is the policy the backend enforces, which a trace explains.
func (b *Backend) enforced() model.Policy {
	b.sg.mu.Lock()
	defer b.sg.mu.Unlock()
	return b.sg.policy
}

// policyPort gives an attached port its elements — before its link joins
// the bridge, so that it never forwards unfiltered — or takes a detached
// port's away.
func (b *Backend) policyPort(ctx context.Context, p model.Port, attached bool) error {
	b.sg.mu.Lock()
	defer b.sg.mu.Unlock()
	if b.sg.ports == nil {
		b.sg.ports = map[string]netip.Addr{}
	}
	delete(b.sg.ports, p.Name)
	if attached {
		b.sg.ports[p.Name] = p.IP
	}
	if err := b.syncPolicy(ctx); err != nil {
		return fmt.Errorf("security groups: %w", err)
	}
	return nil
}

// prunePolicy enforces s.Policy whole on s.Ports, from what the kernel
// holds: nothing is sent when it holds that already.
func (b *Backend) prunePolicy(ctx context.Context, s datapath.State) error {
	b.sg.mu.Lock()
	defer b.sg.mu.Unlock()
	b.sg.policy, b.sg.primed, b.sg.held = s.Policy, true, nil
	b.sg.ports = map[string]netip.Addr{}
	for _, p := range s.Ports {
		b.sg.ports[p.Name] = p.IP
	}
	if err := b.syncPolicy(ctx); err != nil {
		return fmt.Errorf("prune security groups: %w", err)
	}
	return nil
}

// syncPolicy sends the kernel what differs between the table it holds and
// the one the policy wants; b.sg.mu is held.
//
// What it holds is our copy, which someone may have made stale (the table
// or a set deleted by hand): a change made from it can then fail (elements
// into a set that is gone, a counter deleted that is gone), so on a failure
// from our copy the kernel's table is read and the change sent by a
// script, which makes whatever is missing.
func (b *Backend) syncPolicy(ctx context.Context) error {
	cached := b.sg.held != nil
	if !cached {
		have, err := readPolicyTable(ctx)
		if err != nil {
			return err
		}
		b.sg.held = &have
	}
	have := *b.sg.held
	want := b.wantFrom(have)
	b.sg.held = nil // unknown until the change is through
	// Primed, a table whose ingress chain an earlier version put on the
	// forward hook is rewritten whole (policyScript moves the chain).
	failed := sendPolicy(ctx, have, want, b.sg.primed && have.forwardIngress)
	if failed != nil && !cached {
		return failed
	}
	if failed != nil {
		have, err := readPolicyTable(ctx)
		if err != nil {
			return fmt.Errorf("%w; read the table again: %w", failed, err)
		}
		want = b.wantFrom(have)
		if err := hostnet.ApplyNft(ctx, policyScript(have, want)); err != nil {
			return fmt.Errorf("%w; rules, from the table read again: %w", failed, err)
		}
		b.log.Warn("security groups: the table was not as last written (changed by hand?); written again", "table", hostnet.PolicyTable, "err", failed)
	}
	b.sg.held = &want
	return nil
}

// wantFrom is the table to make of have, the kernel's; b.sg.mu is held.
func (b *Backend) wantFrom(have policyTable) policyTable {
	want := wantPolicy(b.sg.policy, b.sg.ports)
	if !b.sg.primed {
		want = grown(have, want)
	}
	return want
}

// sendPolicy turns the table have into want: by a script when objects or
// rules differ or rewrite is set, by set elements alone when only they do.
func sendPolicy(ctx context.Context, have, want policyTable, rewrite bool) error {
	switch {
	case have.exists != want.exists || have.hash != want.hash || rewrite || !covers(have, want):
		if err := hostnet.ApplyNft(ctx, policyScript(have, want)); err != nil {
			return fmt.Errorf("rules: %w", err)
		}
	case want.exists:
		if err := applyElements(ctx, nil, have, want); err != nil {
			return fmt.Errorf("address sets: %w", err)
		}
	}
	return nil
}

// grown is what may change before the first Prune, while the ports are
// attached one by one and the policy's other ports are not known yet:
// what a previous run left stays, and only elements missing from its
// sets are added, so that a port attached now is filtered at once. With
// no table left (the host rebooted) the policy's table is made for the
// ports attached so far.
func grown(have, want policyTable) policyTable {
	if !have.exists {
		return want
	}
	g := have
	g.elems = map[string]map[netip.Addr]bool{}
	for set, elems := range have.elems {
		g.elems[set] = map[netip.Addr]bool{}
		maps.Copy(g.elems[set], elems)
		for a := range want.elems[set] {
			g.elems[set][a] = true
		}
	}
	return g
}

// covers reports whether have holds every object want names: one removed
// by hand is put back by a script, which elements alone cannot do.
func covers(have, want policyTable) bool {
	for _, names := range [][2][]string{{have.sets, want.sets}, {have.chains, want.chains}, {have.counters, want.counters}} {
		for _, n := range names[1] {
			if _, found := slices.BinarySearch(names[0], n); !found {
				return false
			}
		}
	}
	return true
}

// applyElements sends the elements that differ between have and want as
// one netlink batch (one transaction): set elements and nothing else. dial
// replaces the kernel in tests.
func applyElements(ctx context.Context, dial func([]netlink.Message) ([]netlink.Message, error), have, want policyTable) error {
	c, err := hostnet.NftConn(ctx, dial)
	if err != nil {
		return err
	}
	table := &nftables.Table{Name: hostnet.PolicyTable, Family: nftables.TableFamilyINet}
	for _, name := range want.sets {
		add, del := elemDiff(have.elems[name], want.elems[name])
		set := &nftables.Set{Table: table, Name: name, KeyType: nftables.TypeIPAddr}
		if len(del) > 0 {
			if err := c.SetDeleteElements(set, elements(del)); err != nil {
				return fmt.Errorf("set %s: %w", name, err)
			}
		}
		if len(add) > 0 {
			if err := c.SetAddElements(set, elements(add)); err != nil {
				return fmt.Errorf("set %s: %w", name, err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netlink batch: %w", err)
	}
	return nil
}

func elements(addrs []netip.Addr) []nftables.SetElement {
	e := make([]nftables.SetElement, len(addrs))
	for i, a := range addrs {
		e[i] = nftables.SetElement{Key: a.AsSlice()}
	}
	return e
}

// readPolicyTable reads the table over netlink: its objects' names, the
// sets' elements and the rules' hash. No table is an empty one.
func readPolicyTable(ctx context.Context) (policyTable, error) {
	c, err := hostnet.NftConn(ctx, nil)
	if err != nil {
		return policyTable{}, err
	}
	table, err := c.ListTableOfFamily(hostnet.PolicyTable, nftables.TableFamilyINet)
	if errors.Is(err, os.ErrNotExist) {
		return policyTable{}, nil
	}
	if err != nil {
		return policyTable{}, fmt.Errorf("read table %s: %w", hostnet.PolicyTable, err)
	}
	t := policyTable{exists: true, elems: map[string]map[netip.Addr]bool{}}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return policyTable{}, fmt.Errorf("read chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != table.Name {
			continue
		}
		t.chains = append(t.chains, ch.Name)
		if ch.Name != policyIngress {
			continue
		}
		t.forwardIngress = ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookForward
		rules, err := c.GetRules(table, ch)
		if err != nil {
			return policyTable{}, fmt.Errorf("read chain %s: %w", ch.Name, err)
		}
		if len(rules) > 0 {
			comment, _ := userdata.GetString(rules[0].UserData, userdata.TypeComment)
			t.hash, _ = strings.CutPrefix(comment, policyHashPfx)
		}
	}
	sets, err := c.GetSets(table)
	if err != nil {
		return policyTable{}, fmt.Errorf("read sets: %w", err)
	}
	for _, s := range sets {
		t.sets = append(t.sets, s.Name)
		elems, err := c.GetSetElements(s)
		if err != nil {
			return policyTable{}, fmt.Errorf("read set %s: %w", s.Name, err)
		}
		t.elems[s.Name] = map[netip.Addr]bool{}
		for _, e := range elems {
			if a, ok := netip.AddrFromSlice(e.Key); ok {
				t.elems[s.Name][a] = true
			}
		}
	}
	counters, err := hostnet.NftCounters(c, table)
	if err != nil {
		return policyTable{}, err
	}
	t.counters = slices.Collect(maps.Keys(counters))
	slices.Sort(t.chains)
	slices.Sort(t.sets)
	slices.Sort(t.counters)
	return t, nil
}

// PolicyStats implements datapath.PolicyEnforcer: the rules' counters and
// drop_policy, from one netlink dump of the table's counters. No table, no
// counters. The bridge table's drop_dhcp_server (ports.go) comes with
// them: these drops are the Linux backend's only ones with a reason, and
// the exporter counts them under the reason's name as a switch's drops.
func (b *Backend) PolicyStats(ctx context.Context) (datapath.PolicyStats, error) {
	c, err := hostnet.NftConn(ctx, nil)
	if err != nil {
		return datapath.PolicyStats{}, fmt.Errorf("policy stats: %w", err)
	}
	var s datapath.PolicyStats
	bridge, err := hostnet.NftCounters(c, &nftables.Table{Name: hostnet.Table, Family: nftables.TableFamilyBridge})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return datapath.PolicyStats{}, fmt.Errorf("policy stats: %w", err)
	}
	if n, ok := bridge[dhcpServerCounter]; ok {
		s.Drops = append(s.Drops, datapath.DropStats{Reason: v1.DropDHCPServer, Packets: n.Packets, Bytes: n.Bytes})
	}
	table := &nftables.Table{Name: hostnet.PolicyTable, Family: nftables.TableFamilyINet}
	counters, err := hostnet.NftCounters(c, table)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return datapath.PolicyStats{}, fmt.Errorf("policy stats: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(counters)) {
		n := counters[name]
		if name == policyDropCounter {
			s.Drops = append(s.Drops, datapath.DropStats{Reason: v1.DropPolicy, Packets: n.Packets, Bytes: n.Bytes})
		} else if g, i, ok := parseRuleCounter(name); ok {
			s.Rules = append(s.Rules, datapath.RuleStats{Group: g, Index: i, Packets: n.Packets, Bytes: n.Bytes})
		}
	}
	slices.SortFunc(s.Rules, func(x, y datapath.RuleStats) int {
		if c := strings.Compare(x.Group, y.Group); c != 0 {
			return c
		}
		return x.Index - y.Index
	})
	return s, nil
}

package ovs

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/ovs/unixctl"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// SetPolicy implements datapath.PolicyEnforcer: the flows of what
// model.DiffPolicy finds changed — the groups' rules, the addresses'
// passes, the ports' ACL flows — compiled under the policy held and under
// p, and their difference sent in one bundle. An equal policy sends
// nothing; before the first Prune p is only recorded. The backend keeps p:
// the caller must not change it afterwards.
func (b *Backend) SetPolicy(ctx context.Context, p model.Policy) error {
	b.policyMu.Lock()
	defer b.policyMu.Unlock()
	b.mu.Lock()
	ch := model.DiffPolicy(b.state.policy, p)
	inFlight := meetsTraffic(b.state, ch)
	b.mu.Unlock()
	if ch.Empty() {
		return nil
	}
	b.mu.Lock()
	primed := b.primed
	b.mu.Unlock()
	err := b.change(ctx, b.policyScope(ch), func(s *state) func() {
		old := s.policy
		s.policy = p
		return func() { s.policy = old }
	})
	if err != nil {
		return fmt.Errorf("security groups: flows: %w", err)
	}
	if primed && inFlight {
		b.waitRevalidated(ctx)
	}
	return nil
}

// meetsTraffic tells whether a policy change can meet packets the datapath
// already forwards, whose cached flows may then be stale: it changes a
// group's rules, an attached port's ACL flows, or the passes of an address
// that an attached or another host's port holds. The change that readies a
// port before its AttachPort (its groups, its address's passes) cannot: no
// packet from or to its address is forwarded before the port exists (the
// spoof guard, no neighbour), so it needs no revalidator round, like the
// attach of a port without groups. The wait is up to a round's period
// (500 ms) and was half the time of such attaches at 1,000 ports
// (docs/BENCHMARKS.md).
func meetsTraffic(s state, ch model.PolicyChange) bool {
	if len(ch.Groups) > 0 {
		return true
	}
	attached := map[string]bool{}
	held := map[netip.Addr]bool{}
	for _, byName := range s.ports {
		for name, p := range byName {
			attached[name] = true
			held[p.IP] = true
		}
	}
	for _, ports := range s.remote {
		for _, r := range ports {
			held[r.Port.IP] = true
		}
	}
	return slices.ContainsFunc(slices.Concat(ch.Ports, ch.EgressFlip), func(name string) bool { return attached[name] }) ||
		slices.ContainsFunc(ch.Members, func(a netip.Addr) bool { return held[a] })
}

// waitRevalidated waits for a round of ovs-vswitchd's revalidators. The
// bundle's reply comes once the tables changed; the datapath's cached
// flows follow at the next round, and until then a packet may still take
// the old way — in the sandbox a stale drop ate the first SYN of a
// connection that a rule just added allows, which then waited a second for
// its retransmission. After the round, SetPolicy's return means the
// datapath enforces the policy. The flows are in place either way, so a
// failure to wait is only logged.
func (b *Backend) waitRevalidated(ctx context.Context) {
	ctl, err := b.controlSocket()
	if err == nil {
		_, err = unixctl.Call(ctx, ctl, "revalidator/wait")
	}
	if err != nil {
		b.log.Warn("security groups: wait for the datapath's flows to follow the tables", "err", err)
	}
}

// policyScope is the flows a policy change can affect: the changed groups'
// rules, the changed addresses' passes and the ACL flows of the changed
// ports that are attached.
func (b *Backend) policyScope(ch model.PolicyChange) scope {
	ports := map[string]bool{}
	for _, name := range slices.Concat(ch.Ports, ch.EgressFlip) {
		ports[name] = true
	}
	return func(s state) flowset.Desired {
		var d flowset.Desired
		for _, g := range ch.Groups {
			d.Flows = append(d.Flows, b.pipeline.GroupRules(s.policy, g)...)
		}
		for _, a := range ch.Members {
			d.Flows = append(d.Flows, b.pipeline.Member(s.policy, a, s.pickup != 0)...)
		}
		for network, byName := range s.ports {
			n, ok := s.networks[network]
			if !ok {
				continue
			}
			for name, p := range byName {
				if ports[name] {
					d.Flows = append(d.Flows, b.pipeline.PortACL(s.policy, p, n, s.pickup != 0)...)
				}
			}
		}
		return d
	}
}

// PolicyStats implements datapath.PolicyEnforcer: each rule's packets and
// bytes, the sum of its flows' counters (one flow per port mask), from the
// flow dump the other statistics share (ourFlows). Rules of groups the
// policy held does not name are left out; drops are SwitchStats'.
func (b *Backend) PolicyStats(ctx context.Context) (datapath.PolicyStats, error) {
	flows, err := b.ourFlows(ctx)
	if err != nil {
		return datapath.PolicyStats{}, fmt.Errorf("security group stats: %w", err)
	}
	b.mu.Lock()
	owners := pipeline.NewOwners(pipeline.Model{Policy: b.state.policy})
	groups := map[string]model.SecurityGroup{}
	maps.Copy(groups, b.state.policy.Groups)
	b.mu.Unlock()
	type key struct {
		group string
		index int
	}
	sums := map[key]*datapath.RuleStats{}
	for i := range flows {
		f := &flows[i]
		group, index, ok := owners.Rule(f.Cookie)
		if !ok {
			continue
		}
		if g, known := groups[group]; !known || index >= len(g.Rules) {
			continue
		}
		k := key{group, index}
		if sums[k] == nil {
			sums[k] = &datapath.RuleStats{Group: group, Index: index}
		}
		sums[k].Packets += f.PacketCount
		sums[k].Bytes += f.ByteCount
	}
	out := datapath.PolicyStats{Rules: make([]datapath.RuleStats, 0, len(sums))}
	for _, r := range sums {
		out.Rules = append(out.Rules, *r)
	}
	slices.SortFunc(out.Rules, func(a, b datapath.RuleStats) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Index, b.Index))
	})
	return out, nil
}

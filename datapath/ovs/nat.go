package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/natnft"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Floating IPs and port forwards (docs/DESIGN.md §8.5, docs/NAT.md):
// the host's nftables translate, in the table both backends render
// (datapath/natnft); the flows carry the translated connections to and
// from the host (pipeline.NAT); the host's rules admit them (HostRuleset).

// NATHost is what the backend needs of the host's NAT table beyond
// rendering it: what the table holds, its counters, and the conntrack
// entries of rules it no longer holds (datapath/natnft). Config.NAT.
type NATHost struct {
	// Installed is the hash the table was rendered with (natnft.Hash; ""
	// without a table) and the counters it holds.
	Installed func(ctx context.Context) (hash string, counters []string, err error)
	// Stats reads the table's counters.
	Stats func(ctx context.Context) (datapath.NATStats, error)
	// Forget deletes the conntrack entries of the connections old
	// translated that now does not, and the unreplied ones to the host
	// ports of now's UDP forwards that old did not have.
	Forget func(ctx context.Context, old, now model.NAT) error
}

var _ datapath.NATEnforcer = (*Backend)(nil)

// errNoNATHost: the backend was made without Config.NAT, and reports no
// NAT capability.
var errNoNATHost = errors.New("nat: the backend has no NAT table (Config.NAT)")

// SetNAT implements datapath.NATEnforcer: the NAT flows' difference in one
// bundle, then the host's rules — the NAT table, with the admission of
// floating ports' own connections when they changed, in one transaction —
// then the connections of removed rules go. The flows only carry packets
// to the host and back, which takes only what it translates, so between
// the two steps a packet is dropped at worst. An equal NAT sends nothing,
// unless the host's step failed since; before the first Prune n is only
// recorded.
func (b *Backend) SetNAT(ctx context.Context, n model.NAT) error {
	if b.natHost == nil {
		return errNoNATHost
	}
	b.natMu.Lock()
	defer b.natMu.Unlock()
	b.mu.Lock()
	old, primed := b.state.nat, b.primed
	b.mu.Unlock()
	if old.Equal(n) && b.natStale == nil {
		return nil
	}
	err := b.change(ctx, b.natScope(), func(s *state) func() {
		s.nat = n
		return func() { s.nat = old }
	})
	if err != nil {
		return fmt.Errorf("nat: flows: %w", err)
	}
	if !primed {
		return nil
	}
	// What the host holds: old, or what it held before a failed step,
	// whose admission rules may be in any state — the whole host then.
	held := old
	if b.natStale != nil {
		held = *b.natStale
	}
	// The whole host side when the floating ports change (HostRuleset
	// lets them out) or the first rule comes (IPv4 forwarding).
	if b.natStale == nil && slices.Equal(floatingIPs(old), floatingIPs(n)) && old.Empty() == n.Empty() {
		err = b.syncNAT(ctx)
	} else {
		err = b.syncHost(ctx)
	}
	if err != nil {
		b.natStale = &held
		return fmt.Errorf("nat: %w", err)
	}
	b.natStale = nil
	if err := b.natHost.Forget(ctx, held, n); err != nil {
		b.log.Warn("nat: drop the connections of removed rules", "err", err)
	}
	return nil
}

// NATStats implements datapath.NATEnforcer.
func (b *Backend) NATStats(ctx context.Context) (datapath.NATStats, error) {
	if b.natHost == nil {
		return datapath.NATStats{}, errNoNATHost
	}
	st, err := b.natHost.Stats(ctx)
	if err != nil {
		return datapath.NATStats{}, fmt.Errorf("nat stats: %w", err)
	}
	return st, nil
}

// natScope is the NAT's flows.
func (b *Backend) natScope() scope {
	return func(s state) flowset.Desired {
		return flowset.Desired{Flows: b.pipeline.NAT(s.nat, s.networks)}
	}
}

// syncNAT makes the NAT table match the state.
func (b *Backend) syncNAT(ctx context.Context) error {
	b.hostMu.Lock()
	defer b.hostMu.Unlock()
	networks, nat := b.hostSide()
	script, hash := b.natTable(networks, nat)
	if script == "" {
		return nil
	}
	if err := hostnet.ApplyNft(ctx, script); err != nil {
		return fmt.Errorf("nat table: %w", err)
	}
	b.natTook(hash, nat)
	return nil
}

// hostSide is what of the state the host side follows.
func (b *Backend) hostSide() ([]model.Network, model.NAT) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Collect(maps.Values(b.state.networks)), b.state.nat
}

// loadNAT learns what the host's NAT table holds, which a restart with the
// same NAT then leaves alone.
func (b *Backend) loadNAT(ctx context.Context) error {
	if b.natHost == nil {
		return nil
	}
	hash, counters, err := b.natHost.Installed(ctx)
	if err != nil {
		return fmt.Errorf("nat table: %w", err)
	}
	b.hostMu.Lock()
	b.natHash, b.natCounters = hash, counters
	b.hostMu.Unlock()
	return nil
}

// natTable is the script that makes the NAT table hold nat on networks,
// "" when it does, and the hash it is rendered with; hostMu is held. The
// table is rendered with the networks' subnets (natnft.Host), so a network
// change may change it too.
func (b *Backend) natTable(networks []model.Network, nat model.NAT) (script, hash string) {
	if b.natHost == nil {
		return "", b.natHash
	}
	h := natnft.Host{Ours: []string{b.bridge}}
	for _, n := range networks {
		h.Subnets = append(h.Subnets, n.Subnet)
	}
	if !nat.Empty() {
		hash = natnft.Hash(nat, h)
	}
	if hash == b.natHash {
		return "", hash
	}
	return natnft.Render(nat, h, b.natCounters), hash
}

// natTook records that the NAT table took nat, rendered with hash;
// hostMu is held.
func (b *Backend) natTook(hash string, nat model.NAT) {
	b.natHash, b.natCounters = hash, natnft.CounterNames(nat)
}

// floatingIPs are the addresses of n's floating ports, which the host's
// rules let out (HostRuleset).
func floatingIPs(n model.NAT) []netip.Addr {
	ips := make([]netip.Addr, 0, len(n.Floating))
	for _, f := range n.Floating {
		ips = append(ips, f.IP)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return ips
}

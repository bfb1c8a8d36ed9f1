package linux

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/natnft"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Floating IPs and port forwards (docs/DESIGN.md §8.5) are translated in
// the host's table `ip ovs_vnet_nat`, which natnft renders for both
// backends; what this backend adds is its host (the networks' bridges
// and subnets), the admission of translated connections and of floating
// ports' own in the inet table (Ruleset), and hairpin mode on every
// port's bridge port (AttachPort): with br_netfilter, a connection a port
// opens to its own forward is bridged back out of the port it came in on,
// which the bridge does only in hairpin mode.

// natState is what the backend enforces of the NAT; Backend.mu guards it,
// as the table's host is the networks the backend holds.
type natState struct {
	// want is the NAT the controller last asked for.
	want model.NAT
	// enforced is the NAT the kernel was last given, successfully, by
	// this run: what a change forgets the connections of.
	enforced model.NAT
	// primed: Prune ran, and every change since is sent. Before, a
	// previous run's table stays in force.
	primed bool
	// held is the table's hash and counters as the kernel holds them, or
	// nil when unknown (at the first Prune, or after a failed change): the
	// next change reads the kernel first.
	held *natHeld
}

type natHeld struct {
	hash     string
	counters []string
}

// SetNAT implements datapath.NATEnforcer: one `nft -f` that rewrites the
// NAT table, and the inet table too when the ports with a floating IP
// change, so the admission and the translation change together. An equal
// NAT sends nothing; before the first Prune n is only recorded.
func (b *Backend) SetNAT(ctx context.Context, n model.NAT) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.nat.want
	b.nat.want = n
	if !b.nat.primed || n.Equal(was) && b.nat.held != nil {
		return nil
	}
	// Against what the kernel took: after a failed change the inet
	// table may still hold the ports of an older NAT.
	inet := !maps.EqualFunc(floatingPorts(b.nat.enforced), floatingPorts(n), slices.Equal)
	if err := b.sync(ctx, inet, ""); err != nil {
		return fmt.Errorf("nat: %w", err)
	}
	return nil
}

// NATStats implements datapath.NATEnforcer.
func (b *Backend) NATStats(ctx context.Context) (datapath.NATStats, error) {
	return natnft.ReadStats(ctx)
}

// natHost is the table's host: the networks' bridges and subnets; b.mu
// is held.
func (b *Backend) natHost() natnft.Host {
	var h natnft.Host
	for _, n := range b.networks {
		h.Ours = append(h.Ours, b.bridgeName(n.Name))
		h.Subnets = append(h.Subnets, n.Subnet)
	}
	return h
}

// natScript is what the NAT table needs to hold b.nat.want, "" when it
// does; b.mu is held. Nothing before the first Prune.
func (b *Backend) natScript(ctx context.Context) (string, natHeld, error) {
	if !b.nat.primed {
		return "", natHeld{}, nil
	}
	if b.nat.held == nil {
		hash, counters, err := natnft.Installed(ctx)
		if err != nil {
			return "", natHeld{}, err
		}
		b.nat.held = &natHeld{hash: hash, counters: counters}
	}
	h, n := b.natHost(), b.nat.want
	want := natHeld{}
	if !n.Empty() {
		want = natHeld{hash: natnft.Hash(n, h), counters: natnft.CounterNames(n)}
	}
	if b.nat.held.hash == want.hash && (want.hash != "" || len(b.nat.held.counters) == 0) {
		return "", want, nil
	}
	return natnft.Render(n, h, b.nat.held.counters), want, nil
}

// natApplied records that the kernel took the NAT, and forgets the
// connections of the rules it no longer has; b.mu is held.
func (b *Backend) natApplied(ctx context.Context, held natHeld) {
	if !b.nat.primed {
		return
	}
	b.nat.held = &held
	was, now := b.nat.enforced, b.nat.want
	b.nat.enforced = now
	// The rules are right whatever conntrack does: a connection left is
	// one the rule would have ended, logged, not failed.
	if err := natnft.Forget(ctx, was, now); err != nil {
		b.log.Warn("nat: forget connections of removed rules", "err", err)
	}
}

package datapath

import (
	"context"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// NATEnforcer is a backend that enforces floating IPs and port forwards
// (docs/DESIGN.md §8.5): the controller hands it the whole model.NAT of
// this host. Both backends translate in the host's nftables (one table,
// datapath/natnft), since traffic from outside enters through the host on
// both; the OVS backend adds the flows that carry it to and from the host.
type NATEnforcer interface {
	// SetNAT replaces the NAT as one atomic change of the host's rules —
	// one nft transaction, and on OVS one bundle of the NAT flows —
	// sending nothing when n is Equal to the last NAT it took. Before the
	// first Prune it only records n, which Prune (State.NAT) then
	// enforces whole, sending nothing when the host holds it already.
	// A rule it removes takes its connections with it (conntrack).
	SetNAT(ctx context.Context, n model.NAT) error
	// NATStats is one snapshot of the floating IPs' and forwards'
	// counters, bounded by ctx.
	NATStats(ctx context.Context) (NATStats, error)
}

// NATStats are a NATEnforcer's counters, by object name.
type NATStats struct {
	Forwards []ForwardStats
	Floating []FloatingStats
}

// ForwardStats count what one port forward carried: the connections it
// translated, and the packets and bytes towards the port after the
// translation (from anywhere, the host included).
type ForwardStats struct {
	Name                        string
	Connections, Packets, Bytes uint64
}

// FloatingStats count the connections one floating IP translated: to the
// port (in), and the port's own with the floating source (out).
type FloatingStats struct {
	Name                          string
	ConnectionsIn, ConnectionsOut uint64
}

package datapath

import "context"

// PortStats are one port's counters as the switch sees them: rx is what the
// switch received from the port (what the workload sent), tx what it sent to
// the port. Port and Network are ovs-vnet's names.
type PortStats struct {
	Port, Network        string
	RxPackets, TxPackets uint64
	RxBytes, TxBytes     uint64
	RxDropped, TxDropped uint64
	RxErrors, TxErrors   uint64
	SpoofedPackets       uint64 // dropped by the port's anti-spoofing rules
}

// DatapathStats is a datapath's flow cache, as ovs-vswitchd reports it
// (`ovs-appctl dpctl/show`).
type DatapathStats struct {
	Name                 string // e.g. netdev@ovs-netdev, system@ovs-system
	Hit, Missed, Lost    uint64 // packets by lookup result
	Flows                uint64 // datapath flows now
	MasksHit, MasksTotal uint64 // mask lookups, and masks now
	HasMasks             bool   // the datapath counts masks (the userspace one does not)
}

// TableStats is one OpenFlow table of the integration bridge.
type TableStats struct {
	Table            uint8
	Name             string // the pipeline stage, or "" for a table it does not use
	ActiveFlows      uint64
	Lookups, Matches uint64
}

// DropStats counts what the pipeline dropped for one reason.
type DropStats struct {
	Reason         string
	Packets, Bytes uint64
}

// SwitchStats is what the OVS backend reports beyond ports.
type SwitchStats struct {
	Datapaths []DatapathStats
	Tables    []TableStats
	Drops     []DropStats
	// SparePorts are the veth pairs waiting on the bridge for ports to
	// claim them.
	SparePorts uint64
	// PathMTU is what the controller did about routed packets too big
	// for their destination network.
	PathMTU PathMTUStats
}

// PathMTUStats counts the answers to packets too big for the next hop.
type PathMTUStats struct {
	// ICMPSent are the ICMP "fragmentation needed" sent for them.
	ICMPSent uint64
	// RateLimited are those whose copy the packet-in meter dropped: no
	// ICMP for them.
	RateLimited uint64
}

// SwitchStatsSource is implemented by backends with an OpenFlow switch. Each
// call is one snapshot, bounded by ctx.
type SwitchStatsSource interface {
	SwitchStats(ctx context.Context) (SwitchStats, error)
}

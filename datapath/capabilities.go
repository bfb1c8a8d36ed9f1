package datapath

// Capabilities are what a backend can do beyond Backend, as it reports
// them (Backend.Capabilities): each field is the backend itself in the
// role it plays, or nil when it cannot play it. Callers ask for a role
// here, never by asserting on the backend's type: an assertion that stops
// matching (a method renamed, its signature changed) turns a feature off
// without a word, where a field the backend fills in fails to compile.
type Capabilities struct {
	// PortChecker: ports are checked and repaired when they stop
	// forwarding (both backends).
	PortChecker PortChecker
	// HostChecker: networks have a host side a new one must not clash
	// with (both backends).
	HostChecker HostChecker
	// Overlay: the backend takes the remote ports of a cluster.
	Overlay Overlay
	// Tracer: GET /v1/trace can explain a packet.
	Tracer Tracer
	// FlowLister: the datapath runs OpenFlow flows (OVS).
	FlowLister FlowLister
	// SwitchStats: the datapath has an OpenFlow switch's counters (OVS).
	SwitchStats SwitchStatsSource
	// Policy: the backend enforces security groups; without it the
	// controller refuses ports and groups that ask for them.
	Policy PolicyEnforcer
	// NAT: the backend enforces floating IPs and port forwards; without
	// it the controller refuses them.
	NAT NATEnforcer
	// NoPolicy says why Policy is nil when the backend could enforce
	// security groups but for the host's setup, and how to change it:
	// the refusal of a group or of a port's groups gives it.
	NoPolicy string
	// DHCP: the backend answers DHCP for its ports (both backends); its
	// counters are what GET /metrics shows of DHCP.
	DHCP DHCPServer
	// OVSDBConnected reports whether the backend's OVSDB session is up;
	// nil for a backend without OVSDB (Linux).
	OVSDBConnected func() bool
}

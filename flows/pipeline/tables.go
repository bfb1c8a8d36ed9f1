// Package pipeline compiles ovs-vnet's model — networks, routers, ports — into
// the flows and groups of the integration bridge. It is pure: no I/O, the same
// model always gives the same flows, and each object's flows can be compiled
// on their own so that a change to one port sends only that port's flows.
//
// The pipeline is declared as data (Stages, the registers below); docs/PIPELINE.md
// describes it for operators, and the golden tests show every flow as
// ovs-ofctl prints it.
package pipeline

import "github.com/ovs-vnet/ovs-vnet/api/v1"

// Table numbers. Gaps leave room for stages to come without renumbering the
// tables operators already know.
const (
	TableClassify   uint8 = 0
	TableSpoofGuard uint8 = 10
	TableFromHost   uint8 = 15
	TableGateway    uint8 = 20
	TableRoute      uint8 = 30
	TablePathMTU    uint8 = 35
	TableNeighbor   uint8 = 40
	TableL2         uint8 = 50
)

// RegNetwork is the register (reg0) holding the ID of the network a packet
// is in: the in_port's network from classification on, the destination
// network once routed.
const RegNetwork = 0

// RegFlags is the register (reg1) whose bits carry one stage's verdict on
// a packet to a later stage.
const RegFlags = 1

// FlagTooBig is the bit of RegFlags that route sets when a routed packet is
// longer than the destination network's MTU (check_pkt_larger), for
// path_mtu to act on.
const FlagTooBig = 0

// Stage describes one table: what it does and why it drops.
type Stage struct {
	Table   uint8
	Name    string
	Purpose string
	// Drops maps the priority of each dropping flow in the table to its
	// reason: a flow of the table drops exactly when its priority is here,
	// which the tests check on the compiled flows (stages_test.go).
	Drops map[uint16]string
}

// Priorities, per meaning rather than per table, so that the order of the
// cases within a table reads the same everywhere.
const (
	prioMiss     uint16 = 0   // the table's default
	prioFallback uint16 = 100 // a port's or network's catch-all
	prioGuard    uint16 = 150 // exceptions to the catch-all
	prioExact    uint16 = 200 // the specific case
)

// Stages lists the pipeline's tables in the order packets traverse them.
func Stages() []Stage {
	return []Stage{
		{TableClassify, "classify", "in_port → the port's network (reg0); the host's port goes to from_host; the tunnel's VNI → its network, straight to l2_forward",
			map[uint16]string{prioMiss: v1.DropUnknownPort, prioGuard: v1.DropUnknownVNI}},
		{TableSpoofGuard, "spoof_guard", "only the port's own MAC and IPv4 address (and ARP sender) pass",
			map[uint16]string{prioFallback: v1.DropSpoofed, prioGuard: v1.DropIPv6}},
		{TableFromHost, "from_host", "masquerade replies from the host into their network; ARP for ports answered",
			map[uint16]string{prioMiss: v1.DropHost}},
		{TableGateway, "gateway", "ARP and ping for gateway addresses answered in place; IPv4 to the gateway MAC → route; the rest → l2",
			nil},
		{TableRoute, "route", "between networks a router joins: the destination network (reg0) and whether the packet is too big for it (reg1 bit 0); masquerade networks → the host",
			map[uint16]string{prioGuard: v1.DropIsolated, prioMiss: v1.DropNoRoute}},
		{TablePathMTU, "path_mtu", "a copy of a packet too big for the destination network → the controller (metered), which answers ICMP fragmentation needed; routed on: TTL decremented, source MAC the destination's gateway",
			map[uint16]string{prioMiss: v1.DropNoRoute}},
		{TableNeighbor, "neighbor", "routed packets get the destination port's MAC (a remote port's too)",
			map[uint16]string{prioMiss: v1.DropNoNeighbor}},
		{TableL2, "l2_forward", "to the port of the destination MAC, or into the tunnel to a remote port's host; broadcast and multicast → the network's flood group",
			map[uint16]string{prioMiss: v1.DropUnknownDst}},
	}
}

// DropReason names why the flow at table and priority drops, if it does.
func DropReason(table uint8, priority uint16) (string, bool) {
	for _, s := range Stages() {
		if s.Table == table {
			r, ok := s.Drops[priority]
			return r, ok
		}
	}
	return "", false
}

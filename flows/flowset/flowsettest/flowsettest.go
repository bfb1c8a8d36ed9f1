// Package flowsettest makes flow sets for the tests of the packages that
// diff and apply them (flows/flowset, flows/reconcile).
package flowsettest

import (
	"net"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// Flows is n flows in table 0, each matching one source MAC and sending to port 1.
func Flows(n int, cookie uint64) []flowset.Flow {
	flows := make([]flowset.Flow, n)
	for i := range flows {
		mac := net.HardwareAddr{0x02, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		flows[i] = flowset.Flow{
			Table: 0, Priority: 100, Cookie: cookie,
			Match: openflow.Match{Fields: []openflow.OXM{openflow.EthSrc(mac)}},
			Instructions: []openflow.Instruction{openflow.ApplyActions{Actions: []openflow.Action{
				openflow.ActionOutput{Port: 1, MaxLen: 0},
			}}},
		}
	}
	return flows
}

// FloodGroup is space's group n, an ALL group with one bucket per port.
func FloodGroup(space flowset.CookieSpace, n uint32, ports ...uint32) flowset.Group {
	g := flowset.Group{ID: space.Group(n), Type: openflow.GroupTypeAll}
	for _, p := range ports {
		g.Buckets = append(g.Buckets, openflow.Bucket{WatchPort: openflow.PortAny, WatchGroup: openflow.GroupAny,
			Actions: []openflow.Action{openflow.ActionOutput{Port: p}}})
	}
	return g
}

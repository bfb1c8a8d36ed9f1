package ovsdb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// PortStatistics is an owned port with the statistics column of its
// interface, as the monitor cache holds them.
type PortStatistics struct {
	Port
	// Statistics is Interface.statistics: rx_packets, tx_bytes, ... as
	// ovs-vswitchd last wrote them (every Open_vSwitch
	// other_config:stats-update-interval, 5 s by default and at least 5 s).
	// A counter the interface does not support is absent.
	Statistics map[string]int
}

// Counter returns the statistics key as an unsigned counter: 0 when it is
// absent (or, which OVS never writes, negative).
func (p PortStatistics) Counter(key string) uint64 {
	if v := p.Statistics[key]; v > 0 {
		return uint64(v)
	}
	return 0
}

// PortStatistics lists, from one pass over the cache, the owned ports of the
// bridge (as OwnedPorts does) with their interfaces' statistics, sorted by
// name. A disconnected client fails rather than serve counters that may be
// arbitrarily old.
func (c *Client) PortStatistics(ctx context.Context, bridge string) ([]PortStatistics, error) {
	if !c.Connected() {
		return nil, fmt.Errorf("read port statistics of bridge %q: %w", bridge, errNotConnected)
	}
	var out []PortStatistics
	err := c.eachOwnedPort(ctx, bridge, func(port *vswitch.Port, iface *vswitch.Interface) {
		// The rows are copies made for us by the cache, so their maps
		// need no cloning.
		p := PortStatistics{Port: Port{Name: port.Name, ExternalIDs: port.ExternalIDs}}
		if port.Tag != nil {
			p.Tag = *port.Tag
		}
		if iface != nil {
			if iface.Ofport != nil {
				p.Ofport = *iface.Ofport
			}
			p.Statistics = iface.Statistics
		}
		out = append(out, p)
	})
	if err != nil {
		return nil, fmt.Errorf("read port statistics of bridge %q: %w", bridge, err)
	}
	slices.SortFunc(out, func(a, b PortStatistics) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ovn-org/libovsdb/model"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// PortStatistics is an owned port with the statistics column of its
// interface, as the monitor cache holds them.
type PortStatistics struct {
	Port
	// Statistics is Interface.statistics: rx_packets, tx_bytes, ... as
	// ovs-vswitchd last wrote them (every Open_vSwitch
	// other_config:stats-update-interval, 5 s by default and at least 5 s).
	// A counter the interface does not support is absent. Read only: the
	// map (like Port.ExternalIDs) is the monitor cache's own.
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
//
// It reads each table's rows once, in place (libovsdb's RowsShallow: the
// cache replaces a row on update and never changes one it handed out), rather
// than one Get per port and interface: a Get deep-copies its row through a
// JSON round trip, twice, which with a thousand ports was most of a scrape.
// So the maps in the result (ExternalIDs, Statistics) are the cache's own:
// read only.
func (c *Client) PortStatistics(ctx context.Context, bridge string) ([]PortStatistics, error) {
	if !c.Connected() {
		return nil, fmt.Errorf("read port statistics of bridge %q: %w", bridge, errNotConnected)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read port statistics of bridge %q: %w", bridge, err)
	}
	out, err := c.portStatistics(bridge)
	if err != nil {
		return nil, fmt.Errorf("read port statistics of bridge %q: %w", bridge, err)
	}
	slices.SortFunc(out, func(a, b PortStatistics) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (c *Client) portStatistics(bridge string) ([]PortStatistics, error) {
	tc := c.lc.Cache()
	if tc == nil {
		return nil, errors.New("no cache")
	}
	rows := func(table string) (map[string]model.Model, error) {
		t := tc.Table(table)
		if t == nil {
			return nil, fmt.Errorf("table %s not in the cache", table)
		}
		return t.RowsShallow(), nil
	}
	bridges, err := rows(vswitch.BridgeTable)
	if err != nil {
		return nil, err
	}
	var br *vswitch.Bridge
	for _, m := range bridges {
		if b, ok := m.(*vswitch.Bridge); ok && b.Name == bridge {
			br = b
			break
		}
	}
	if br == nil {
		return nil, errNotInCache(false)
	}
	ports, err := rows(vswitch.PortTable)
	if err != nil {
		return nil, err
	}
	ifaces, err := rows(vswitch.InterfaceTable)
	if err != nil {
		return nil, err
	}
	out := make([]PortStatistics, 0, len(br.Ports))
	for _, uuid := range br.Ports {
		port, _ := ports[uuid].(*vswitch.Port)
		if port == nil || !owned(port.ExternalIDs) || port.Name == bridge {
			continue
		}
		p := PortStatistics{Port: Port{Name: port.Name, ExternalIDs: port.ExternalIDs}}
		if port.Tag != nil {
			p.Tag = *port.Tag
		}
		if len(port.Interfaces) > 0 {
			if iface, _ := ifaces[port.Interfaces[0]].(*vswitch.Interface); iface != nil {
				if iface.Ofport != nil {
					p.Ofport = *iface.Ofport
				}
				p.Statistics = iface.Statistics
			}
		}
		out = append(out, p)
	}
	return out, nil
}

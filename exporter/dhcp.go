package exporter

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// dhcpCollector exports what the backend's DHCP responder counted
// (docs/DHCP.md): the requests by message type, the answers by type and
// the refusals by reason. The backend reports every name, 0 included, so
// that rate() works from the first scrape.
type dhcpCollector struct {
	source snapshot[datapath.DHCPStats]
	read   func(context.Context) (datapath.DHCPStats, error)

	requests, answers, refused *prometheus.Desc

	mu sync.Mutex
	// A refusal the switch counts (OVS: the DHCP meters' drops) starts
	// again from 0 when ovs-vswitchd does, or shrinks when a port's meter
	// goes with the port: kept from going down as a drop reason's sum is.
	// Names are few and fixed by package dhcp, so this memory is too.
	memo map[string]monotonic // "requests/discover" -> see monotonic
}

func newDHCPCollector(read func(context.Context) (datapath.DHCPStats, error)) *dhcpCollector {
	return &dhcpCollector{
		read: read,
		requests: prometheus.NewDesc("ovs_vnet_dhcp_requests_total",
			"DHCP messages the ports sent that reached the daemon's responder, by message type.", []string{"type"}, nil),
		answers: prometheus.NewDesc("ovs_vnet_dhcp_answers_total",
			"DHCP answers the daemon sent to its ports, by type (offer, ack, nak).", []string{"type"}, nil),
		refused: prometheus.NewDesc("ovs_vnet_dhcp_refused_total",
			"DHCP messages from ports that got no answer, or a NAK, by reason.", []string{"reason"}, nil),
		memo: map[string]monotonic{},
	}
}

func (c *dhcpCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.answers
	ch <- c.refused
}

func (c *dhcpCollector) collect(ctx context.Context) ([]prometheus.Metric, error) {
	s, err := c.source.get(ctx, c.read)
	if err != nil {
		return nil, fmt.Errorf("DHCP stats: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []prometheus.Metric
	for _, f := range []struct {
		desc   *prometheus.Desc
		prefix string
		counts map[string]uint64
	}{{c.requests, "requests/", s.Requests}, {c.answers, "answers/", s.Answers}, {c.refused, "refused/", s.Refused}} {
		for _, name := range slices.Sorted(maps.Keys(f.counts)) {
			if name == "" {
				continue // not a label value a series may have
			}
			m := c.memo[f.prefix+name]
			v, _ := m.fold(f.counts[name], 0)
			c.memo[f.prefix+name] = m
			out = append(out, constMetric(f.desc, prometheus.CounterValue, float64(v), name))
		}
	}
	return out, nil
}

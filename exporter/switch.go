package exporter

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// switchCollector exports what only a switch has: its datapaths' flow
// caches, the OpenFlow tables of the pipeline and the drop flows.
type switchCollector struct {
	source snapshot[switchSnapshot]
	read   func(context.Context) (datapath.SwitchStats, bool, error)

	lookups, flows, masksHit, masks *prometheus.Desc
	tableActive, tableLookups       *prometheus.Desc
	tableMatches                    *prometheus.Desc
	dropPackets, dropBytes          *prometheus.Desc
	spares                          *prometheus.Desc
	pmtuSent, pmtuLimited           *prometheus.Desc

	mu    sync.Mutex
	drops map[string]monotonic // reason -> its sum's memory
}

type switchSnapshot struct {
	stats datapath.SwitchStats
	ok    bool
}

func newSwitchCollector(read func(context.Context) (datapath.SwitchStats, bool, error)) *switchCollector {
	dp := []string{"datapath"}
	table := []string{"table"}
	reason := []string{"reason"}
	return &switchCollector{
		read: read,
		lookups: prometheus.NewDesc("ovs_vnet_datapath_lookups_total",
			"Packets looked up in the datapath's flow cache, by result: hit (a cached flow matched), missed (sent to ovs-vswitchd), lost (missed and dropped before ovs-vswitchd saw it).",
			[]string{"datapath", "result"}, nil),
		flows:    prometheus.NewDesc("ovs_vnet_datapath_flows", "Flows in the datapath's flow cache now.", dp, nil),
		masksHit: prometheus.NewDesc("ovs_vnet_datapath_masks_hit_total", "Masks visited by flow cache lookups.", dp, nil),
		masks:    prometheus.NewDesc("ovs_vnet_datapath_masks", "Masks in the datapath's flow cache now.", dp, nil),
		tableActive: prometheus.NewDesc("ovs_vnet_openflow_table_active_flows",
			"OpenFlow flows in the pipeline table, by stage name.", table, nil),
		tableLookups: prometheus.NewDesc("ovs_vnet_openflow_table_lookups_total",
			"Packets looked up in the pipeline table, by stage name.", table, nil),
		tableMatches: prometheus.NewDesc("ovs_vnet_openflow_table_matches_total",
			"Packets that matched a flow of the pipeline table, by stage name.", table, nil),
		dropPackets: prometheus.NewDesc("ovs_vnet_drop_packets_total",
			"Packets the pipeline dropped, by reason.", reason, nil),
		dropBytes: prometheus.NewDesc("ovs_vnet_drop_bytes_total",
			"Bytes the pipeline dropped, by reason.", reason, nil),
		spares: prometheus.NewDesc("ovs_vnet_spare_ports",
			"Veth pairs waiting on the OVS bridge for veth ports to claim them (--spare-ports).", nil, nil),
		pmtuSent: prometheus.NewDesc("ovs_vnet_pmtu_icmp_sent_total",
			"ICMP fragmentation needed sent for routed packets too big for their destination network.", nil, nil),
		pmtuLimited: prometheus.NewDesc("ovs_vnet_pmtu_rate_limited_total",
			"Routed packets too big for their destination network that the packet-in meter dropped unanswered.", nil, nil),
		drops: map[string]monotonic{},
	}
}

func (c *switchCollector) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lookups, c.flows, c.masksHit, c.masks,
		c.tableActive, c.tableLookups, c.tableMatches, c.dropPackets, c.dropBytes, c.spares, c.pmtuSent, c.pmtuLimited} {
		ch <- d
	}
}

func (c *switchCollector) collect(ctx context.Context) ([]prometheus.Metric, error) {
	snap, err := c.source.get(ctx, func(ctx context.Context) (switchSnapshot, error) {
		s, ok, err := c.read(ctx)
		return switchSnapshot{s, ok}, err
	})
	// A switch source may answer in part (the control socket gone, the
	// OpenFlow session up): what it read is served, and the error counted.
	if err != nil {
		err = fmt.Errorf("switch stats: %w", err)
	}
	if !snap.ok {
		return nil, err
	}
	s := snap.stats
	var out []prometheus.Metric
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		out = append(out, constMetric(d, prometheus.CounterValue, float64(v), labels...))
	}
	gauge := func(d *prometheus.Desc, v uint64, labels ...string) {
		out = append(out, constMetric(d, prometheus.GaugeValue, float64(v), labels...))
	}
	// Labels must be unique per series, or the whole scrape fails; the
	// first entry of a name wins.
	seen := map[string]bool{}
	for _, d := range s.Datapaths {
		if d.Name == "" || seen[d.Name] {
			continue
		}
		seen[d.Name] = true
		counter(c.lookups, d.Hit, d.Name, "hit")
		counter(c.lookups, d.Missed, d.Name, "missed")
		counter(c.lookups, d.Lost, d.Name, "lost")
		gauge(c.flows, d.Flows, d.Name)
		if d.HasMasks { // a 0 from a datapath that keeps no count would mislead
			counter(c.masksHit, d.MasksHit, d.Name)
			gauge(c.masks, d.MasksTotal, d.Name)
		}
	}
	// Only the pipeline's tables: OVS reports all 254, and the unused ones
	// would be series nobody reads.
	clear(seen)
	for _, t := range s.Tables {
		if t.Name == "" || seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		gauge(c.tableActive, t.ActiveFlows, t.Name)
		counter(c.tableLookups, t.Lookups, t.Name)
		counter(c.tableMatches, t.Matches, t.Name)
	}
	for _, d := range c.foldDrops(s.Drops) {
		counter(c.dropPackets, d.Packets, d.Reason)
		counter(c.dropBytes, d.Bytes, d.Reason)
	}
	gauge(c.spares, s.SparePorts)
	counter(c.pmtuSent, s.PathMTU.ICMPSent)
	counter(c.pmtuLimited, s.PathMTU.RateLimited)
	return out, err
}

// foldDrops sums the drops by reason and keeps each sum from going down
// (monotonic). A reason is the sum of several drop flows — one spoof drop
// per port — and a detached port takes its flow and that flow's count with
// it; the sum must not fall back (see portsCollector for why), and a switch
// restart is not seen as a reset but continues from the last value.
// Reasons are few and fixed by the pipeline, so their memory is kept for
// the life of the process. The policy collector folds a Linux
// backend's policy drops here too.
func (c *switchCollector) foldDrops(drops []datapath.DropStats) []datapath.DropStats {
	sums := map[string]datapath.DropStats{}
	for _, d := range drops {
		if d.Reason == "" {
			continue
		}
		s := sums[d.Reason]
		s.Reason = d.Reason
		s.Packets += d.Packets
		s.Bytes += d.Bytes
		sums[d.Reason] = s
	}
	out := make([]datapath.DropStats, 0, len(sums))
	c.mu.Lock()
	defer c.mu.Unlock()
	for r, s := range sums {
		m := c.drops[r]
		packets, bytes := m.fold(s.Packets, s.Bytes)
		c.drops[r] = m
		out = append(out, datapath.DropStats{Reason: r, Packets: packets, Bytes: bytes})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Reason < out[j].Reason })
	return out
}

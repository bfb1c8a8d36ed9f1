package exporter

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// natCollector exports what each floating IP and port forward of this host
// carried. The host's NAT table keeps an object's counters across other
// objects' changes and restarts (docs/NAT.md, "NAT on the host"), so
// they fall only when the object is deleted and made again, a reset
// Prometheus reads as one; no memory is kept here.
type natCollector struct {
	source snapshot[datapath.NATStats]
	read   func(context.Context) (datapath.NATStats, error)

	fwdConns, fwdPackets, fwdBytes, fipConns *prometheus.Desc
}

func newNATCollector(read func(context.Context) (datapath.NATStats, error)) *natCollector {
	return &natCollector{
		read: read,
		fwdConns: prometheus.NewDesc("ovs_vnet_port_forward_connections_total",
			"New connections a port forward translated towards its port, from anywhere (the host included).", []string{"forward"}, nil),
		fwdPackets: prometheus.NewDesc("ovs_vnet_port_forward_packets_total",
			"Packets of a port forward's connections towards its port, after the translation.", []string{"forward"}, nil),
		fwdBytes: prometheus.NewDesc("ovs_vnet_port_forward_bytes_total",
			"Bytes of a port forward's connections towards its port, after the translation.", []string{"forward"}, nil),
		fipConns: prometheus.NewDesc("ovs_vnet_floating_ip_connections_total",
			"New connections a floating IP translated: to its port (in), and the port's own that left with the floating address as source (out).",
			[]string{"floating_ip", "direction"}, nil),
	}
}

func (c *natCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.fwdConns
	ch <- c.fwdPackets
	ch <- c.fwdBytes
	ch <- c.fipConns
}

func (c *natCollector) collect(ctx context.Context) ([]prometheus.Metric, error) {
	s, err := c.source.get(ctx, c.read)
	if err != nil {
		return nil, fmt.Errorf("nat stats: %w", err)
	}
	var out []prometheus.Metric
	for _, f := range uniqueByName(s.Forwards, func(f datapath.ForwardStats) string { return f.Name }) {
		out = append(out, constMetric(c.fwdConns, prometheus.CounterValue, float64(f.Connections), f.Name),
			constMetric(c.fwdPackets, prometheus.CounterValue, float64(f.Packets), f.Name),
			constMetric(c.fwdBytes, prometheus.CounterValue, float64(f.Bytes), f.Name))
	}
	for _, f := range uniqueByName(s.Floating, func(f datapath.FloatingStats) string { return f.Name }) {
		out = append(out, constMetric(c.fipConns, prometheus.CounterValue, float64(f.ConnectionsIn), f.Name, "in"),
			constMetric(c.fipConns, prometheus.CounterValue, float64(f.ConnectionsOut), f.Name, "out"))
	}
	return out, nil
}

// uniqueByName sorts objects by name, dropping unnamed ones and all but the
// first of a name: labels must be unique per series, or the whole scrape
// fails.
func uniqueByName[T any](objs []T, name func(T) string) []T {
	out := slices.DeleteFunc(slices.Clone(objs), func(o T) bool { return name(o) == "" })
	slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(name(a), name(b)) })
	return slices.CompactFunc(out, func(a, b T) bool { return name(a) == name(b) })
}

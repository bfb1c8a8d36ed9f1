package exporter

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// nCounters is the number of counters a port has (datapath.PortStats).
const nCounters = 9

type portCounters [nCounters]uint64

func countersOf(s *datapath.PortStats) portCounters {
	return portCounters{s.RxPackets, s.TxPackets, s.RxBytes, s.TxBytes, s.RxDropped, s.TxDropped, s.RxErrors, s.TxErrors, s.SpoofedPackets}
}

// portsCollector exports per-port counters and their per-network sums.
//
// The sums are counters too, and a counter must not go down while its series
// lives: summing only the ports that exist now would drop by a port's whole
// history when it is detached, which rate() reads as a reset and turns into a
// spike of everything the other ports ever sent. So the counts of ports that
// left stay in their network's sum. A port that left is first remembered on
// its own for goneGrace, since it may be back (a snapshot taken while its link
// was being re-enslaved): back with counters no lower, it continues and its
// remembered counts are dropped, or they would count twice. After the grace
// they join the network's base, so memory follows the churn of the last
// minutes, not of the process' life. A network's sums live while it has ports;
// with its last port gone its series end and nothing is kept for it.
type portsCollector struct {
	source  snapshot[[]datapath.PortStats]
	read    func(context.Context) ([]datapath.PortStats, error)
	perPort bool
	port    [nCounters]*prometheus.Desc
	network [nCounters]*prometheus.Desc
	now     func() time.Time
	// labelNames of the per-port series, sorted as a metric's label pairs
	// must be; here because dto wants pointers to them.
	labelNames [2]string

	mu   sync.Mutex
	last map[string]portMemo     // port -> what the last snapshot said
	gone map[string]portMemo     // port -> its last counts, since memo.at
	base map[string]portCounters // network -> counts of ports gone for good
}

// goneGrace is how long a port that left the snapshots may come back as the
// same link. Ten minutes outlasts any reconcile of a link.
const goneGrace = 10 * time.Minute

type portMemo struct {
	network string
	c       portCounters
	at      time.Time // when it left (gone only)
}

func newPortsCollector(read func(context.Context) ([]datapath.PortStats, error), perPort bool) *portsCollector {
	names := [nCounters]struct{ name, help string }{
		{"rx_packets_total", "Packets the switch received from the port (sent by the workload)"},
		{"tx_packets_total", "Packets the switch sent to the port (received by the workload)"},
		{"rx_bytes_total", "Bytes the switch received from the port"},
		{"tx_bytes_total", "Bytes the switch sent to the port"},
		{"rx_dropped_total", "Packets from the port dropped on receive"},
		{"tx_dropped_total", "Packets to the port dropped on transmit"},
		{"rx_errors_total", "Receive errors on the port"},
		{"tx_errors_total", "Transmit errors on the port"},
		{"spoofed_packets_total", "Packets from the port dropped by its anti-spoofing rules"},
	}
	c := &portsCollector{read: read, perPort: perPort, now: time.Now, labelNames: [2]string{"network", "port"},
		last: map[string]portMemo{}, gone: map[string]portMemo{}, base: map[string]portCounters{}}
	for i, n := range names {
		c.port[i] = prometheus.NewDesc("ovs_vnet_port_"+n.name, n.help+".", []string{"port", "network"}, nil)
		c.network[i] = prometheus.NewDesc("ovs_vnet_network_"+n.name, strings.ReplaceAll(n.help, "the port", "the network's ports")+", ports since detached included.", []string{"network"}, nil)
	}
	return c
}

func (c *portsCollector) describe(ch chan<- *prometheus.Desc) {
	// Described even when PerPort is off: describing more than is collected
	// is allowed, and the registry then refuses a clash either way.
	for i := range nCounters {
		ch <- c.port[i]
		ch <- c.network[i]
	}
}

func (c *portsCollector) collect(ctx context.Context) ([]prometheus.Metric, error) {
	stats, err := c.source.get(ctx, c.read)
	if err != nil {
		return nil, fmt.Errorf("port stats: %w", err)
	}
	sums, current := c.fold(stats)
	n := len(sums) * nCounters
	if c.perPort {
		n += len(current) * nCounters
	}
	out := make([]prometheus.Metric, 0, n)
	if c.perPort {
		// One allocation for all the port series rather than three per
		// series (the metric, its dto.Counter and its value).
		counters := make([]counter, len(current)*nCounters)
		for j, s := range current {
			v := countersOf(s)
			// The port's nine series share one set of label pairs: with
			// thousands of ports, building them per series is most of a
			// scrape's allocations.
			labels := []*dto.LabelPair{{Name: &c.labelNames[0], Value: &s.Network}, {Name: &c.labelNames[1], Value: &s.Port}}
			for i := range nCounters {
				m := &counters[j*nCounters+i]
				m.desc, m.labels, m.value = c.port[i], labels, float64(v[i])
				out = append(out, m)
			}
		}
	}
	networks := make([]string, 0, len(sums))
	for n := range sums {
		networks = append(networks, n)
	}
	sort.Strings(networks)
	for _, n := range networks {
		v := sums[n]
		for i := range nCounters {
			out = append(out, constMetric(c.network[i], prometheus.CounterValue, float64(v[i]), n))
		}
	}
	return out, nil
}

// fold takes a snapshot into the memory of past ports and returns the
// network sums and the snapshot's ports, one entry per port name (a source
// that named a port twice would otherwise make the whole scrape fail on a
// duplicate series).
func (c *portsCollector) fold(stats []datapath.PortStats) (map[string]portCounters, []*datapath.PortStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	seen := make(map[string]portMemo, len(stats))
	current := make([]*datapath.PortStats, 0, len(stats))
	sums := map[string]portCounters{}
	for i := range stats {
		s := &stats[i]
		if _, dup := seen[s.Port]; dup || s.Port == "" || s.Network == "" {
			continue
		}
		m := portMemo{network: s.Network, c: countersOf(s)}
		seen[s.Port] = m
		current = append(current, s)
		sums[s.Network] = add(sums[s.Network], m.c)
		if prev, ok := c.last[s.Port]; ok && (prev.network != m.network || wentDown(prev.c, m.c)) {
			// Another link now (re-created, or moved): the old one's counts
			// are history of its network.
			c.base[prev.network] = add(c.base[prev.network], prev.c)
		}
		if g, ok := c.gone[s.Port]; ok && g.network == m.network && !wentDown(g.c, m.c) {
			delete(c.gone, s.Port) // the same link, back
		}
	}
	for port, prev := range c.last {
		if _, ok := seen[port]; ok {
			continue
		}
		if g, ok := c.gone[port]; ok {
			// It left before, came back as a new link and left again.
			c.base[g.network] = add(c.base[g.network], g.c)
		}
		prev.at = now
		c.gone[port] = prev
	}
	for port, g := range c.gone {
		switch {
		case !has(sums, g.network):
			delete(c.gone, port)
		case now.Sub(g.at) > goneGrace:
			c.base[g.network] = add(c.base[g.network], g.c)
			delete(c.gone, port)
		default:
			sums[g.network] = add(sums[g.network], g.c)
		}
	}
	for n, b := range c.base {
		if !has(sums, n) {
			delete(c.base, n)
			continue
		}
		sums[n] = add(sums[n], b)
	}
	c.last = seen
	return sums, current
}

// counter is a const counter whose label pairs are given, already sorted, and
// may be shared (the registry and the encoders only read them, and so they
// only read the dto.Counter Write points into the counter itself).
type counter struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
	dto    dto.Counter
}

func (m *counter) Desc() *prometheus.Desc { return m.desc }

func (m *counter) Write(out *dto.Metric) error {
	m.dto.Value = &m.value
	out.Label = m.labels
	out.Counter = &m.dto
	return nil
}

func has[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

// wentDown reports a counter reset: any counter below its last value.
func wentDown(prev, now portCounters) bool {
	for i := range nCounters {
		if now[i] < prev[i] {
			return true
		}
	}
	return false
}

func add(a, b portCounters) portCounters {
	for i := range nCounters {
		a[i] += b[i]
	}
	return a
}

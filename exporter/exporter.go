// Package exporter turns the datapath's counters into Prometheus metrics. Each
// scrape asks the source for one snapshot per collector (ports, switch,
// policy, dhcp, nat) and builds const metrics from it, so a port deleted
// since the last scrape has no series any more, and nothing the exporter
// keeps grows with churn.
//
// A scrape never waits on a dead switch for longer than Options.Timeout: the
// collector whose source fails or overruns is left out of that scrape and
// ovs_vnet_scrape_errors_total{collector} rises, while the other collectors
// and every other metric on the registry are served as usual.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// Source is what the exporter reads; the controller implements it on top of
// whichever backend is connected. Each call is one snapshot bounded by ctx.
type Source interface {
	PortStats(ctx context.Context) ([]datapath.PortStats, error)
	// SwitchStats: ok is false when the backend has no switch (Linux).
	SwitchStats(ctx context.Context) (s datapath.SwitchStats, ok bool, err error)
	// PolicyStats are the security groups' counters (datapath.PolicyEnforcer).
	PolicyStats(ctx context.Context) (datapath.PolicyStats, error)
	// DHCPStats are the DHCP responder's counters (datapath.DHCPServer).
	DHCPStats(ctx context.Context) (datapath.DHCPStats, error)
	// NATStats are the floating IPs' and port forwards' counters
	// (datapath.NATEnforcer).
	NATStats(ctx context.Context) (datapath.NATStats, error)
}

// Options tune the exporter.
type Options struct {
	// Timeout bounds each collector's snapshot; 0 means DefaultTimeout. Keep
	// it below Prometheus' scrape_timeout (10 s by default) so that a slow
	// switch costs its own series, not the whole scrape.
	Timeout time.Duration
	// PerPort exports the ovs_vnet_port_* series. Off, only the per-network
	// sums remain, for hosts where ports × 9 series is more than the
	// monitoring system should carry.
	PerPort bool
	// Log receives snapshot failures; nil discards them.
	Log *slog.Logger
}

// DefaultTimeout is the snapshot deadline when Options.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// Collector names, the values of the `collector` label.
const (
	CollectorPorts  = "ports"
	CollectorSwitch = "switch"
	CollectorPolicy = "policy"
	CollectorDHCP   = "dhcp"
	CollectorNAT    = "nat"
)

// Exporter is a prometheus.Collector for the datapath's counters. Register it
// once; it is safe for concurrent scrapes.
type Exporter struct {
	timeout  time.Duration
	log      *slog.Logger
	ports    *portsCollector
	sw       *switchCollector
	policy   *policyCollector
	dhcp     *dhcpCollector
	nat      *natCollector
	errors   *prometheus.CounterVec
	duration *prometheus.Desc

	mu      sync.Mutex
	failing map[string]bool // collector -> its last snapshot failed, to log transitions only
}

// New returns an exporter reading src.
func New(src Source, opts Options) *Exporter {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	sw := newSwitchCollector(src.SwitchStats)
	e := &Exporter{
		timeout: opts.Timeout,
		log:     opts.Log,
		ports:   newPortsCollector(src.PortStats, opts.PerPort),
		sw:      sw,
		policy:  newPolicyCollector(src.PolicyStats, sw),
		dhcp:    newDHCPCollector(src.DHCPStats),
		nat:     newNATCollector(src.NATStats),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ovs_vnet_scrape_errors_total",
			Help: "Snapshots of the datapath that failed or missed their deadline, by collector; that collector's series are missing from the scrape.",
		}, []string{"collector"}),
		duration: prometheus.NewDesc("ovs_vnet_scrape_duration_seconds",
			"Time the collector's last snapshot took, until it answered or its deadline passed.", []string{"collector"}, nil),
		failing: map[string]bool{},
	}
	// Present at zero from the start, so that an alert on increase() sees
	// the first error.
	e.errors.WithLabelValues(CollectorPorts)
	e.errors.WithLabelValues(CollectorSwitch)
	e.errors.WithLabelValues(CollectorPolicy)
	e.errors.WithLabelValues(CollectorDHCP)
	e.errors.WithLabelValues(CollectorNAT)
	return e
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	e.ports.describe(ch)
	e.sw.describe(ch)
	e.policy.describe(ch)
	e.dhcp.describe(ch)
	e.nat.describe(ch)
	e.errors.Describe(ch)
	ch <- e.duration
}

// Collect implements prometheus.Collector. The snapshots are taken at the
// same time, so a scrape lasts at most one Timeout even when all overrun.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	type result struct {
		name    string
		metrics []prometheus.Metric
		took    time.Duration
		err     error
	}
	run := func(name string, collect func(context.Context) ([]prometheus.Metric, error), out chan<- result) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		defer cancel()
		ms, err := collect(ctx)
		out <- result{name, ms, time.Since(start), err}
	}
	collectors := []struct {
		name    string
		collect func(context.Context) ([]prometheus.Metric, error)
	}{{CollectorPorts, e.ports.collect}, {CollectorSwitch, e.sw.collect}, {CollectorPolicy, e.policy.collect},
		{CollectorDHCP, e.dhcp.collect}, {CollectorNAT, e.nat.collect}}
	results := make(chan result, len(collectors))
	for _, c := range collectors {
		go run(c.name, c.collect, results)
	}
	for range collectors {
		r := <-results
		for _, m := range r.metrics {
			ch <- m
		}
		e.report(r.name, r.err)
		ch <- constMetric(e.duration, prometheus.GaugeValue, r.took.Seconds(), r.name)
	}
	// After all, so this scrape already counts its own failures.
	e.errors.Collect(ch)
}

func (e *Exporter) report(collector string, err error) {
	e.mu.Lock()
	was := e.failing[collector]
	e.failing[collector] = err != nil
	e.mu.Unlock()
	switch {
	case err != nil:
		e.errors.WithLabelValues(collector).Inc()
		// A dead switch fails every scrape; one warning per outage is enough.
		level := slog.LevelWarn
		if was {
			level = slog.LevelDebug
		}
		e.log.Log(context.Background(), level, "metrics snapshot failed; its series are left out of the scrape", "collector", collector, "err", err)
	case was:
		e.log.Info("metrics snapshot works again", "collector", collector)
	}
}

// snapshot runs at most one call of a source at a time. A scrape that finds a
// call under way waits for that one instead of starting another, so a source
// that ignores its context (a hung socket) ties up one goroutine per
// collector, however often Prometheus scrapes meanwhile; and snapshots are
// taken one after the other, never overtaking each other.
type snapshot[T any] struct {
	mu      sync.Mutex
	pending *call[T]
}

type call[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// get returns the result of a call of f started now or earlier, or ctx's
// error once ctx ends first. f gets a context of its own with ctx's deadline,
// since it may outlive the scrape that started it.
func (s *snapshot[T]) get(ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	s.mu.Lock()
	c := s.pending
	if c == nil {
		c = &call[T]{done: make(chan struct{})}
		s.pending = c
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(DefaultTimeout)
		}
		go func() {
			fctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			c.v, c.err = f(fctx)
			s.mu.Lock()
			s.pending = nil
			s.mu.Unlock()
			close(c.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.v, c.err
	case <-ctx.Done():
		var zero T
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within the deadline: %w", err)
		}
		return zero, err
	}
}

// constMetric builds one sample. Label counts are fixed by the descriptors
// built here, so an error is a bug; it becomes an invalid metric (the scrape
// reports it) rather than a panic that would take the daemon down.
func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

// monotonic keeps a counter made of datapath counters from going down,
// the one way the exporter does (drop reasons, rules' hits). A fall has
// causes the exporter cannot tell apart — a flow that took its count
// with it out of a sum (a detached port's spoof drop), or counters
// started again from 0 (a group's rules rewritten) — so it is made up
// by its own size: the series continues from its last value, never
// counts a packet twice, and misses at most what was counted between
// the fall and the scrape that sees it.
type monotonic struct {
	lastPackets, lastBytes uint64
	offPackets, offBytes   uint64
}

// fold takes a new reading of the counters and returns them made monotonic.
func (m *monotonic) fold(packets, bytes uint64) (uint64, uint64) {
	if packets < m.lastPackets {
		m.offPackets += m.lastPackets - packets
	}
	if bytes < m.lastBytes {
		m.offBytes += m.lastBytes - bytes
	}
	m.lastPackets, m.lastBytes = packets, bytes
	return packets + m.offPackets, bytes + m.offBytes
}

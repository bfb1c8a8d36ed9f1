package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's own series. They are built before the controller
// so that main can register them on its registry; the gauges read the
// controller's state at scrape time.
type Metrics struct {
	m   *metrics
	reg prometheus.Registerer
}

type metrics struct {
	attachDuration    prometheus.Histogram
	reconcileDuration prometheus.Histogram
	remotePorts       prometheus.Gauge
	// routeRestoreFailures counts detached ports whose namespace did not
	// get back the default route they displaced (Controller.detach).
	routeRestoreFailures prometheus.Counter
	// portsDown are this host's ports that do not forward, by reason;
	// repairs the attaches that tried to make one forward again, by
	// result (drift.go).
	portsDown *prometheus.GaugeVec
	repairs   *prometheus.CounterVec
	// released counts the ports the daemon released on its own, by
	// reason (release.go).
	released *prometheus.CounterVec
	// natLeftOut are the floating IPs and forwards of this host's ports
	// that it cannot enforce; natSyncErrors the hand-overs of the NAT
	// that failed in the background (nat.go).
	natLeftOut    prometheus.Gauge
	natSyncErrors prometheus.Counter
}

// NewMetrics creates the controller's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
	m := &metrics{
		attachDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ovs_vnet_port_attach_duration_seconds",
			Help:    "Time from the start of a port's datapath attach until it forwards.",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10},
		}),
		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ovs_vnet_reconcile_duration_seconds",
			Help: "Time of a full reconcile of the desired state with the datapath (at start and after each reconnect).",
			// From 10 ms (an empty host) to 10 minutes (thousands of ports to re-attach).
			Buckets: []float64{0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 600},
		}),
		remotePorts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ovs_vnet_remote_ports",
			Help: "Other hosts' ports this host forwards to (cluster mode): those of live hosts in the networks its ports are in or route to.",
		}),
		routeRestoreFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ovs_vnet_default_route_restore_failures_total",
			Help: "Ports detached whose namespace could not be given back the default route the port had displaced (default_route).",
		}),
		portsDown: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ovs_vnet_ports_down",
			Help: "This host's ports that do not forward now, by reason (the status_reason of GET /v1/ports).",
		}, []string{"reason"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ovs_vnet_port_repairs_total",
			Help: "Attaches of a port found not forwarding (by the watcher or an identical PUT), by result: repaired or failed.",
		}, []string{"result"}),
		released: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ovs_vnet_ports_released_total",
			Help: "Ports the daemon released on its own, by reason: netns_gone, a release_with_netns port whose namespace was gone for --netns-grace.",
		}, []string{"reason"}),
		natLeftOut: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ovs_vnet_nat_left_out",
			Help: "Floating IPs and port forwards of this host's ports that it cannot enforce (logged as \"nat left out\" with the reason).",
		}),
		natSyncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ovs_vnet_nat_sync_errors_total",
			Help: "Hand-overs of the floating IPs and port forwards to the datapath that failed after a port's change or another host's; each is retried.",
		}),
	}
	for _, r := range faultReasons() {
		m.portsDown.WithLabelValues(r)
	}
	for _, r := range []string{"repaired", "failed"} {
		m.repairs.WithLabelValues(r)
	}
	for _, r := range releaseReasons() {
		m.released.WithLabelValues(r)
	}
	reg.MustRegister(m.attachDuration, m.reconcileDuration, m.remotePorts, m.routeRestoreFailures, m.portsDown, m.repairs, m.released,
		m.natLeftOut, m.natSyncErrors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "ovs_vnet_build_info",
			Help:        "Build information; the value is always 1.",
			ConstLabels: prometheus.Labels{"version": version},
		}, func() float64 { return 1 }))
	return &Metrics{m: m, reg: reg}
}

// observe registers the gauges that read c. They read what c published, so
// a scrape never waits for a change in progress.
func (m *Metrics) observe(c *Controller) {
	gauge := func(name, help string, f func(s *status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(c.status()) })
	}
	m.reg.MustRegister(
		gauge("ovs_vnet_networks", "Networks in the desired state.", func(s *status) float64 { return float64(s.networks) }),
		gauge("ovs_vnet_routers", "Routers in the desired state.", func(s *status) float64 { return float64(s.routers) }),
		gauge("ovs_vnet_ports", "This host's ports in the desired state.", func(s *status) float64 { return float64(s.ports) }),
		gauge("ovs_vnet_cluster_hosts", "Live hosts of the cluster, this one included (cluster mode; 0 for a single host).", func(s *status) float64 { return float64(s.hosts) }),
		gauge("ovs_vnet_ready", "1 when the datapath is connected and reconciled.", func(s *status) float64 { return boolValue(s.ready() == nil) }),
		gauge("ovs_vnet_ovsdb_connected", "1 while the OVS backend has its OVSDB session; 0 otherwise, and on the Linux backend.",
			func(s *status) float64 {
				connected := capabilities(s.backend).OVSDBConnected
				return boolValue(connected != nil && connected())
			}),
	)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

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
	attachDuration prometheus.Histogram
}

// NewMetrics creates the controller's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
	m := &metrics{
		attachDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ovs_vnet_port_attach_duration_seconds",
			Help:    "Time from the start of a port's datapath attach until it forwards.",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10},
		}),
	}
	reg.MustRegister(m.attachDuration, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "ovs_vnet_build_info",
		Help:        "Build information; the value is always 1.",
		ConstLabels: prometheus.Labels{"version": version},
	}, func() float64 { return 1 }))
	return &Metrics{m: m, reg: reg}
}

// observe registers the gauges that read c.
func (m *Metrics) observe(c *Controller) {
	count := func(f func() int) func() float64 {
		return func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			return float64(f())
		}
	}
	ready := func() float64 {
		if c.Ready() != nil {
			return 0
		}
		return 1
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ovs_vnet_networks", Help: "Networks in the desired state."},
			count(func() int { return len(c.networks) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ovs_vnet_routers", Help: "Routers in the desired state."},
			count(func() int { return len(c.routers) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ovs_vnet_ports", Help: "Ports in the desired state."},
			count(func() int { return len(c.ports) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ovs_vnet_ready", Help: "1 when the datapath is connected and reconciled."},
			ready),
	)
}

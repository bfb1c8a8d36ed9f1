package reconcile

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// Metrics are the OpenFlow controller's series, shared by every Manager on
// the same registry, since a registry takes each only once.
type Metrics struct {
	flowMods  *prometheus.CounterVec
	groupMods *prometheus.CounterVec
	bundle    prometheus.Histogram
	errors    *prometheus.CounterVec
	connected *prometheus.GaugeVec
}

// NewMetrics creates the series and registers them on reg, or takes those
// already registered there: a backend opened again after a failed start
// counts on in the same series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		flowMods: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ovs_vnet_openflow_flow_mods_total",
			Help: "Flow mods committed to switches, by operation.",
		}, []string{"op"}),
		groupMods: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ovs_vnet_openflow_group_mods_total",
			Help: "Group mods committed to switches, by operation.",
		}, []string{"op"}),
		bundle: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ovs_vnet_openflow_bundle_duration_seconds",
			Help: "Time from opening a bundle to its commit reply.",
			// From 100 µs: a bundle of a few flows takes well under a millisecond.
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ovs_vnet_openflow_errors_total",
			Help: "OpenFlow error messages received from switches, by error type.",
		}, []string{"type"}),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ovs_vnet_openflow_connected",
			Help: "1 while the datapath has a session with the controller and its flows are synced.",
		}, []string{"datapath"}),
	}
	m.flowMods = register(reg, m.flowMods)
	m.groupMods = register(reg, m.groupMods)
	m.bundle = register(reg, m.bundle)
	m.errors = register(reg, m.errors)
	m.connected = register(reg, m.connected)
	for _, op := range []string{"add", "modify", "delete"} {
		m.flowMods.WithLabelValues(op) // present at zero from the start
		m.groupMods.WithLabelValues(op)
	}
	return m
}

// register registers c on reg and returns it, or returns the collector
// registered there before with the same description. Anything else is a
// programming error, as for MustRegister.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var taken prometheus.AlreadyRegisteredError
	if errors.As(err, &taken) {
		if existing, ok := taken.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(err)
}

func (m *Metrics) applied(p flowset.Plan) {
	m.flowMods.WithLabelValues("add").Add(float64(len(p.Add)))
	m.flowMods.WithLabelValues("modify").Add(float64(len(p.Modify)))
	m.flowMods.WithLabelValues("delete").Add(float64(len(p.Delete)))
	m.groupMods.WithLabelValues("add").Add(float64(len(p.GroupAdd)))
	m.groupMods.WithLabelValues("modify").Add(float64(len(p.GroupModify)))
	m.groupMods.WithLabelValues("delete").Add(float64(len(p.GroupDelete)))
}

// switchError counts an error a switch sent, if err carries one.
func (m *Metrics) switchError(err error) {
	var rerr *ofconn.RequestError
	if errors.As(err, &rerr) {
		m.errors.WithLabelValues(openflow.ErrorType(rerr.Type).String()).Inc()
	}
}

func (m *Metrics) setConnected(dpid uint64, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.connected.WithLabelValues(fmt.Sprintf("%016x", dpid)).Set(v)
}

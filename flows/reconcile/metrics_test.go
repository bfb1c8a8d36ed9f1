package reconcile

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsRegisteredAgain: metrics made again on the same registry (a
// backend opened again after a failed start) count on in the series
// registered first, and the registry stays consistent.
func TestMetricsRegisteredAgain(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	first := NewMetrics(reg)
	first.flowMods.WithLabelValues("add").Add(2)
	first.setConnected(0xb0, true)
	again := NewMetrics(reg)
	again.flowMods.WithLabelValues("add").Add(3)
	if got := testutil.ToFloat64(first.flowMods.WithLabelValues("add")); got != 5 {
		t.Errorf("flow mods added = %v, want 5 across both", got)
	}
	if got := testutil.ToFloat64(again.connected.WithLabelValues("00000000000000b0")); got != 1 {
		t.Errorf("connected as seen again = %v, want 1", got)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

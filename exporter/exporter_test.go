package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/ovs-vnet/ovs-vnet/datapath"

	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// fakeSource serves whatever its functions return; nil means an empty
// snapshot (ports, policy, nat) or no switch.
type fakeSource struct {
	ports  func(context.Context) ([]datapath.PortStats, error)
	sw     func(context.Context) (datapath.SwitchStats, bool, error)
	policy func(context.Context) (datapath.PolicyStats, error)
	dhcp   func(context.Context) (datapath.DHCPStats, error)
	nat    func(context.Context) (datapath.NATStats, error)
}

func (f *fakeSource) PortStats(ctx context.Context) ([]datapath.PortStats, error) {
	if f.ports == nil {
		return nil, nil
	}
	return f.ports(ctx)
}

func (f *fakeSource) SwitchStats(ctx context.Context) (datapath.SwitchStats, bool, error) {
	if f.sw == nil {
		return datapath.SwitchStats{}, false, nil
	}
	return f.sw(ctx)
}

func (f *fakeSource) PolicyStats(ctx context.Context) (datapath.PolicyStats, error) {
	if f.policy == nil {
		return datapath.PolicyStats{}, nil
	}
	return f.policy(ctx)
}

func (f *fakeSource) DHCPStats(ctx context.Context) (datapath.DHCPStats, error) {
	if f.dhcp == nil {
		return datapath.DHCPStats{}, nil
	}
	return f.dhcp(ctx)
}

func (f *fakeSource) NATStats(ctx context.Context) (datapath.NATStats, error) {
	if f.nat == nil {
		return datapath.NATStats{}, nil
	}
	return f.nat(ctx)
}

func staticPorts(ps ...datapath.PortStats) func(context.Context) ([]datapath.PortStats, error) {
	return func(context.Context) ([]datapath.PortStats, error) { return ps, nil }
}

func staticSwitch(s datapath.SwitchStats) func(context.Context) (datapath.SwitchStats, bool, error) {
	return func(context.Context) (datapath.SwitchStats, bool, error) { return s, true, nil }
}

func port(name, network string, base uint64) datapath.PortStats {
	return datapath.PortStats{Port: name, Network: network,
		RxPackets: base + 1, TxPackets: base + 2, RxBytes: base + 3, TxBytes: base + 4,
		RxDropped: base + 5, TxDropped: base + 6, RxErrors: base + 7, TxErrors: base + 8, SpoofedPackets: base + 9}
}

func sampleSwitch() datapath.SwitchStats {
	return datapath.SwitchStats{
		Datapaths: []datapath.DatapathStats{
			{Name: "netdev@ovs-netdev", Hit: 100, Missed: 10, Lost: 1, Flows: 7, MasksHit: 250, MasksTotal: 3, HasMasks: true},
			{Name: "netdev@ovs-netdev", Hit: 999}, // a duplicate must not break the scrape
		},
		Tables: []datapath.TableStats{
			{Table: 0, Name: "classify", ActiveFlows: 4, Lookups: 111, Matches: 110},
			{Table: 10, Name: "spoof_guard", ActiveFlows: 6, Lookups: 110, Matches: 110},
			{Table: 200, Name: "", ActiveFlows: 0, Lookups: 5, Matches: 0}, // not ours: no series
		},
		Drops: []datapath.DropStats{
			{Reason: "spoofed", Packets: 3, Bytes: 180}, // one flow per port: summed
			{Reason: "spoofed", Packets: 2, Bytes: 120},
			{Reason: "unknown_port", Packets: 1, Bytes: 60},
		},
		PathMTU: datapath.PathMTUStats{ICMPSent: 7, RateLimited: 2},
	}
}

func staticPolicy(s datapath.PolicyStats) func(context.Context) (datapath.PolicyStats, error) {
	return func(context.Context) (datapath.PolicyStats, error) { return s, nil }
}

// samplePolicy is an OVS backend's: rules only, its policy drops are the
// switch's.
func samplePolicy() datapath.PolicyStats {
	return datapath.PolicyStats{Rules: []datapath.RuleStats{
		{Group: "web", Index: 0, Packets: 40, Bytes: 2400},
		{Group: "db", Index: 1, Packets: 0, Bytes: 0},
		{Group: "db", Index: 0, Packets: 12, Bytes: 900},
		{Group: "db", Index: 0, Packets: 99}, // a duplicate must not break the scrape
		{Group: "", Index: 0, Packets: 99},
	}}
}

// newRegistry registers an exporter on a pedantic registry, which checks
// every collected metric against its description and for consistency.
func newRegistry(t testing.TB, src Source, opts Options) (*prometheus.Registry, *Exporter) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	e := New(src, opts)
	if err := reg.Register(e); err != nil {
		t.Fatal(err)
	}
	return reg, e
}

// gather scrapes reg and returns its families by name; any gather error
// (pedantic checks included) fails the test.
func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value returns the value of the series of family name with the given
// label pairs ("k=v"), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		var have []string
		for _, l := range m.GetLabel() {
			have = append(have, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(have, ",") != strings.Join(labels, ",") {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// TestGolden compares a whole scrape (but the durations, which vary) with
// testdata/scrape.prom and has promlint check it.
func TestGolden(t *testing.T) {
	src := &fakeSource{ports: staticPorts(port("web-1", "blue", 0), port("web-2", "blue", 100), port("db", "red", 1000)), sw: staticSwitch(sampleSwitch()),
		policy: staticPolicy(samplePolicy()), dhcp: staticDHCP(sampleDHCP()), nat: staticNAT(sampleNAT())}
	reg, _ := newRegistry(t, src, Options{PerPort: true})

	// The handler's text is the exposition format a scraper reads.
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var keep []string
	for _, l := range strings.SplitAfter(rec.Body.String(), "\n") {
		if !strings.Contains(l, "ovs_vnet_scrape_duration_seconds") {
			keep = append(keep, l)
		}
	}
	golden.Check(t, "testdata/scrape.prom", strings.Join(keep, ""))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestPromtool has promtool (Debian package prometheus) check a scrape the
// way Prometheus' own tooling reads it.
func TestPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	testbed.Need(t, err == nil, "promtool (Debian package prometheus)")
	src := &fakeSource{ports: staticPorts(port("web-1", "blue", 0), port("db", "red", 1000)), sw: staticSwitch(sampleSwitch()), policy: staticPolicy(samplePolicy()),
		dhcp: staticDHCP(sampleDHCP())}
	reg, _ := newRegistry(t, src, Options{PerPort: true})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = rec.Body
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestPerPortOff(t *testing.T) {
	src := &fakeSource{ports: staticPorts(port("web-1", "blue", 0), port("web-2", "blue", 100))}
	reg, _ := newRegistry(t, src, Options{PerPort: false})
	fams := gather(t, reg)
	for name := range fams {
		if strings.HasPrefix(name, "ovs_vnet_port_") {
			t.Errorf("per-port family %s exported with PerPort off", name)
		}
	}
	if v, ok := value(fams, "ovs_vnet_network_rx_packets_total", "network=blue"); !ok || v != 1+101 {
		t.Errorf("blue rx packets = %v (present %v), want 102", v, ok)
	}
	if v, ok := value(fams, "ovs_vnet_network_spoofed_packets_total", "network=blue"); !ok || v != 9+109 {
		t.Errorf("blue spoofed packets = %v (present %v), want 118", v, ok)
	}
}

// TestChurn: a deleted port's series go at the next scrape, while the
// network's sums never go down, through a detach and a counter reset.
func TestChurn(t *testing.T) {
	var snap atomic.Pointer[[]datapath.PortStats]
	set := func(ps ...datapath.PortStats) { snap.Store(&ps) }
	src := &fakeSource{ports: func(context.Context) ([]datapath.PortStats, error) { return *snap.Load(), nil }}
	reg, _ := newRegistry(t, src, Options{PerPort: true})
	blueRx := func(fams map[string]*dto.MetricFamily) float64 {
		v, _ := value(fams, "ovs_vnet_network_rx_packets_total", "network=blue")
		return v
	}

	set(port("a", "blue", 0), port("b", "blue", 100), port("c", "red", 0))
	fams := gather(t, reg)
	if got := blueRx(fams); got != 1+101 {
		t.Fatalf("blue rx %v, want 102", got)
	}

	// b detached; a counted 10 more.
	set(port("a", "blue", 10), port("c", "red", 0))
	fams = gather(t, reg)
	if _, ok := value(fams, "ovs_vnet_port_rx_packets_total", "network=blue", "port=b"); ok {
		t.Error("detached port b still has series")
	}
	if _, ok := value(fams, "ovs_vnet_port_rx_packets_total", "network=blue", "port=a"); !ok {
		t.Error("port a lost its series")
	}
	if got := blueRx(fams); got != 11+101 {
		t.Errorf("blue rx after b left: %v, want 112 (b's 101 kept)", got)
	}

	// a's link re-created: its counters start over; c moved to blue.
	set(port("a", "blue", 0), port("c", "blue", 0))
	fams = gather(t, reg)
	if got := blueRx(fams); got != 11+101+1+1 {
		t.Errorf("blue rx after a reset and c joined: %v, want 114", got)
	}
	if v, _ := value(fams, "ovs_vnet_network_rx_packets_total", "network=red"); v != 0 {
		t.Errorf("red has no port left but still a sum: %v", v)
	}
	if _, ok := fams["ovs_vnet_network_rx_packets_total"]; !ok {
		t.Fatal("no network sums")
	}
	if n := len(fams["ovs_vnet_network_rx_packets_total"].GetMetric()); n != 1 {
		t.Errorf("%d network series, want blue only", n)
	}

	// Everything gone: no series, nothing kept.
	set()
	fams = gather(t, reg)
	for name := range fams {
		if strings.HasPrefix(name, "ovs_vnet_port_") || strings.HasPrefix(name, "ovs_vnet_network_") {
			t.Errorf("%s still exported with no ports", name)
		}
	}
}

// TestPortFlicker: a port missing from one snapshot and back with its
// counters is the same link, and is not counted twice; one that stays away
// past the grace is still in its network's sum, from the base.
func TestPortFlicker(t *testing.T) {
	var snap atomic.Pointer[[]datapath.PortStats]
	set := func(ps ...datapath.PortStats) { snap.Store(&ps) }
	src := &fakeSource{ports: func(context.Context) ([]datapath.PortStats, error) { return *snap.Load(), nil }}
	reg, e := newRegistry(t, src, Options{PerPort: true})
	clock := time.Unix(1e9, 0)
	e.ports.now = func() time.Time { return clock }
	blueRx := func() float64 {
		v, _ := value(gather(t, reg), "ovs_vnet_network_rx_packets_total", "network=blue")
		return v
	}
	steps := []struct {
		what  string
		ports []datapath.PortStats
		tick  time.Duration
		want  float64
	}{
		{"both", []datapath.PortStats{port("a", "blue", 0), port("b", "blue", 100)}, 0, 1 + 101},
		{"b missing", []datapath.PortStats{port("a", "blue", 0)}, time.Second, 1 + 101},
		{"b back, 5 more", []datapath.PortStats{port("a", "blue", 0), port("b", "blue", 105)}, time.Second, 1 + 106},
		{"b gone", []datapath.PortStats{port("a", "blue", 0)}, time.Second, 1 + 106},
		{"past the grace", []datapath.PortStats{port("a", "blue", 0)}, goneGrace + time.Second, 1 + 106},
		{"b new link", []datapath.PortStats{port("a", "blue", 0), port("b", "blue", 0)}, time.Second, 1 + 106 + 1},
	}
	for _, st := range steps {
		clock = clock.Add(st.tick)
		set(st.ports...)
		if got := blueRx(); got != st.want {
			t.Errorf("%s: blue rx %v, want %v", st.what, got, st.want)
		}
	}
	if n := len(e.ports.gone); n != 0 {
		t.Errorf("%d ports remembered as gone after the grace, want 0", n)
	}
}

// TestDeadline: a ports source that hangs, ignoring its context, costs the
// scrape no more than the timeout; the switch is still served, the error
// counter rises, and scrapes during the hang do not pile up calls.
func TestDeadline(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	src := &fakeSource{
		ports: func(context.Context) ([]datapath.PortStats, error) {
			calls.Add(1)
			<-release
			return []datapath.PortStats{port("late", "blue", 0)}, nil
		},
		sw: staticSwitch(sampleSwitch()),
	}
	const timeout = 100 * time.Millisecond
	reg, _ := newRegistry(t, src, Options{PerPort: true, Timeout: timeout})
	defer close(release)

	for i := 1; i <= 3; i++ {
		start := time.Now()
		fams := gather(t, reg)
		if took := time.Since(start); took > timeout+400*time.Millisecond {
			t.Errorf("scrape %d took %v with a %v deadline", i, took, timeout)
		}
		if v, _ := value(fams, "ovs_vnet_scrape_errors_total", "collector=ports"); v != float64(i) {
			t.Errorf("scrape %d: ports errors %v, want %d", i, v, i)
		}
		if v, _ := value(fams, "ovs_vnet_scrape_errors_total", "collector=switch"); v != 0 {
			t.Errorf("scrape %d: switch errors %v, want 0", i, v)
		}
		if _, ok := value(fams, "ovs_vnet_datapath_flows", "datapath=netdev@ovs-netdev"); !ok {
			t.Errorf("scrape %d: switch series missing while ports hang", i)
		}
		if _, ok := fams["ovs_vnet_network_rx_packets_total"]; ok {
			t.Errorf("scrape %d: port series served from a snapshot that never came", i)
		}
		if d, ok := value(fams, "ovs_vnet_scrape_duration_seconds", "collector=ports"); !ok || d < timeout.Seconds() {
			t.Errorf("scrape %d: ports duration %v (present %v), want at least the deadline", i, d, ok)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls of the hung source, want 1 (later scrapes wait for it)", n)
	}
}

func TestSwitchPartial(t *testing.T) {
	src := &fakeSource{sw: func(context.Context) (datapath.SwitchStats, bool, error) {
		s := sampleSwitch()
		s.Datapaths = nil
		return s, true, errors.New("datapath stats: no ovs-vswitchd control socket")
	}}
	reg, _ := newRegistry(t, src, Options{})
	fams := gather(t, reg)
	if v, _ := value(fams, "ovs_vnet_scrape_errors_total", "collector=switch"); v != 1 {
		t.Errorf("switch errors %v, want 1", v)
	}
	if _, ok := value(fams, "ovs_vnet_openflow_table_lookups_total", "table=classify"); !ok {
		t.Error("the tables that were read are not served")
	}
	if _, ok := fams["ovs_vnet_datapath_flows"]; ok {
		t.Error("datapath series without datapath stats")
	}
}

func TestSourceErrors(t *testing.T) {
	src := &fakeSource{
		ports: staticPorts(port("a", "blue", 0)),
		sw: func(context.Context) (datapath.SwitchStats, bool, error) {
			return datapath.SwitchStats{}, true, errors.New("dpif/show: connection refused")
		},
	}
	reg, _ := newRegistry(t, src, Options{PerPort: true})
	fams := gather(t, reg)
	if v, _ := value(fams, "ovs_vnet_scrape_errors_total", "collector=switch"); v != 1 {
		t.Errorf("switch errors %v, want 1", v)
	}
	if _, ok := value(fams, "ovs_vnet_port_rx_packets_total", "network=blue", "port=a"); !ok {
		t.Error("port series missing while the switch fails")
	}
}

// TestLinuxSource: no switch is not an error, and exports no switch series.
func TestLinuxSource(t *testing.T) {
	reg, _ := newRegistry(t, &fakeSource{ports: staticPorts(port("a", "blue", 0))}, Options{PerPort: true})
	fams := gather(t, reg)
	for _, name := range []string{"ovs_vnet_datapath_lookups_total", "ovs_vnet_openflow_table_lookups_total", "ovs_vnet_drop_packets_total"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s exported without a switch", name)
		}
	}
	if v, _ := value(fams, "ovs_vnet_scrape_errors_total", "collector=switch"); v != 0 {
		t.Errorf("switch errors %v without a switch, want 0", v)
	}
}

// TestDropsMonotonic: a spoof flow leaving with its port must not make the
// reason's counter go down.
func TestDropsMonotonic(t *testing.T) {
	var drops atomic.Pointer[[]datapath.DropStats]
	set := func(ds ...datapath.DropStats) { drops.Store(&ds) }
	src := &fakeSource{sw: func(context.Context) (datapath.SwitchStats, bool, error) {
		return datapath.SwitchStats{Drops: *drops.Load()}, true, nil
	}}
	reg, _ := newRegistry(t, src, Options{})
	set(datapath.DropStats{Reason: "spoofed", Packets: 5, Bytes: 500}, datapath.DropStats{Reason: "spoofed", Packets: 3, Bytes: 300})
	if v, _ := value(gather(t, reg), "ovs_vnet_drop_packets_total", "reason=spoofed"); v != 8 {
		t.Fatalf("spoofed %v, want 8", v)
	}
	set(datapath.DropStats{Reason: "spoofed", Packets: 4, Bytes: 400}) // the 5-packet flow left, the other counted one more
	fams := gather(t, reg)
	if v, _ := value(fams, "ovs_vnet_drop_packets_total", "reason=spoofed"); v < 8 {
		t.Errorf("spoofed packets went down to %v", v)
	}
	if v, _ := value(fams, "ovs_vnet_drop_bytes_total", "reason=spoofed"); v < 800 {
		t.Errorf("spoofed bytes went down to %v", v)
	}
	set(datapath.DropStats{Reason: "spoofed", Packets: 14, Bytes: 1400})
	if v, _ := value(gather(t, reg), "ovs_vnet_drop_packets_total", "reason=spoofed"); v != 18 {
		t.Errorf("spoofed %v after 10 more, want 18", v)
	}
}

// TestLinuxPolicy: without a switch, the policy drops come with the rules'
// counters, under the drop metric a switch would serve them in.
func TestLinuxPolicy(t *testing.T) {
	src := &fakeSource{policy: staticPolicy(datapath.PolicyStats{
		Rules: []datapath.RuleStats{{Group: "db", Index: 0, Packets: 3, Bytes: 180}},
		Drops: []datapath.DropStats{{Reason: "policy", Packets: 7, Bytes: 420}},
	})}
	reg, _ := newRegistry(t, src, Options{})
	fams := gather(t, reg)
	if v, _ := value(fams, "ovs_vnet_drop_packets_total", "reason=policy"); v != 7 {
		t.Errorf("policy drops %v, want 7", v)
	}
	if v, _ := value(fams, "ovs_vnet_security_group_rule_bytes_total", "group=db", "rule=0"); v != 180 {
		t.Errorf("rule bytes %v, want 180", v)
	}
	if _, ok := fams["ovs_vnet_openflow_table_lookups_total"]; ok {
		t.Error("switch series without a switch")
	}
}

// TestRulesMonotonic: a group's rules rewritten (counters back at 0) must not
// make a rule's counter go down: it goes on from its last value, as a drop
// reason's sum does (monotonic); a rule that is gone ends its series.
func TestRulesMonotonic(t *testing.T) {
	var rules atomic.Pointer[[]datapath.RuleStats]
	set := func(rs ...datapath.RuleStats) { rules.Store(&rs) }
	src := &fakeSource{policy: func(context.Context) (datapath.PolicyStats, error) {
		return datapath.PolicyStats{Rules: *rules.Load()}, nil
	}}
	reg, _ := newRegistry(t, src, Options{})
	set(datapath.RuleStats{Group: "db", Index: 0, Packets: 10}, datapath.RuleStats{Group: "db", Index: 1, Packets: 5})
	if v, _ := value(gather(t, reg), "ovs_vnet_security_group_rule_packets_total", "group=db", "rule=1"); v != 5 {
		t.Fatalf("rule 1: %v, want 5", v)
	}
	set(datapath.RuleStats{Group: "db", Index: 0, Packets: 2}) // db replaced by one rule: counters reset
	fams := gather(t, reg)
	if v, _ := value(fams, "ovs_vnet_security_group_rule_packets_total", "group=db", "rule=0"); v != 10 {
		t.Errorf("rule 0 after the reset: %v, want 10", v)
	}
	if _, ok := value(fams, "ovs_vnet_security_group_rule_packets_total", "group=db", "rule=1"); ok {
		t.Error("rule 1 is gone but still served")
	}
	set(datapath.RuleStats{Group: "db", Index: 0, Packets: 7}, datapath.RuleStats{Group: "db", Index: 1, Packets: 1})
	fams = gather(t, reg)
	if v, _ := value(fams, "ovs_vnet_security_group_rule_packets_total", "group=db", "rule=0"); v != 15 {
		t.Errorf("rule 0, 5 more after the reset: %v, want 15", v)
	}
	if v, _ := value(fams, "ovs_vnet_security_group_rule_packets_total", "group=db", "rule=1"); v != 1 {
		t.Errorf("rule 1 back: %v, want 1 (its old count forgotten)", v)
	}
}

func TestDuplicatePortsDoNotBreakScrape(t *testing.T) {
	src := &fakeSource{ports: staticPorts(port("a", "blue", 0), port("a", "blue", 50), port("", "blue", 0), port("x", "", 0))}
	reg, _ := newRegistry(t, src, Options{PerPort: true})
	fams := gather(t, reg)
	if n := len(fams["ovs_vnet_port_rx_packets_total"].GetMetric()); n != 1 {
		t.Errorf("%d port series, want 1", n)
	}
}

// BenchmarkScrape1000Ports gathers a pedantic registry (as the daemon's)
// holding an exporter of 1,000 ports in 10 networks and the switch sample;
// "http" adds the text encoding of /metrics.
func BenchmarkScrape1000Ports(b *testing.B) {
	ports := make([]datapath.PortStats, 1000)
	for i := range ports {
		ports[i] = port(fmt.Sprintf("port-%04d", i), fmt.Sprintf("net-%d", i%10), uint64(i)*1000)
	}
	for _, perPort := range []bool{true, false} {
		reg, _ := newRegistry(b, &fakeSource{ports: staticPorts(ports...), sw: staticSwitch(sampleSwitch())}, Options{PerPort: perPort})
		b.Run(fmt.Sprintf("perPort=%v/gather", perPort), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("perPort=%v/http", perPort), func(b *testing.B) {
			h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				if rec.Code != 200 {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}

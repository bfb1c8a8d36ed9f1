package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestMetrics is the exporter's acceptance on both backends: per-port
// counters rise by at least the traffic sent, promtool accepts a real scrape,
// a real Prometheus server scrapes the daemon, a deleted port's series are
// gone at the next scrape, and docs/metrics.md lists exactly the metrics the
// two backends expose between them.
func TestMetrics(t *testing.T) {
	exposed := map[string]bool{}
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, _ := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.93.0.0/24"}`, 201, nil)
			nsA, nsB := newNetns(t, "vnt-a-"), newNetns(t, "vnt-b-")
			d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": nsA, "ip": "10.93.0.11"}, 201, nil)
			// b's group lets the pings in, so the security groups' series
			// are exposed too.
			d.must("PUT", "/v1/security-groups/pingable", `{"rules":[{"direction":"ingress","protocol":"icmp"}]}`, 201, nil)
			d.must("PUT", "/v1/ports/b", map[string]any{"network": "blue", "netns": nsB, "ip": "10.93.0.12", "security_groups": []string{"pingable"}}, 201, nil)
			// A port forward and a floating IP: their series are exposed
			// while they exist, traffic or not.
			d.must("PUT", "/v1/port-forwards/fw", map[string]any{"port": "b", "host_port": 8080}, 201, nil)
			d.must("PUT", "/v1/floating-ips/fip", map[string]string{"address": "203.0.113.9", "port": "a"}, 201, nil)

			before := scrape(t, d)
			const pings, size = 20, 1000
			testbed.Run(t, "ip", "netns", "exec", nsA, "ping", "-c", fmt.Sprint(pings), "-i", "0.01", "-s", fmt.Sprint(size), "-W", "1", "10.93.0.12")
			// An echo request on the wire: payload, ICMP 8, IPv4 20, Ethernet 14.
			const frame = size + 8 + 20 + 14
			want := map[string]float64{
				"ovs_vnet_port_rx_packets_total": pings, "ovs_vnet_port_rx_bytes_total": pings * frame,
			}
			// OVS refreshes interface statistics in OVSDB every 5 s.
			var after map[string]*dto.MetricFamily
			waitFor(t, "port counters to count the pings", func() bool {
				after = scrape(t, d)
				for name, min := range want {
					if value(after, name, "a")-value(before, name, "a") < min ||
						value(after, strings.Replace(name, "_rx_", "_tx_", 1), "b")-value(before, strings.Replace(name, "_rx_", "_tx_", 1), "b") < min {
						return false
					}
				}
				return true
			})

			// DHCP's series are there from 0, every name, before any DHCP.
			for name, label := range map[string]map[string]string{
				"ovs_vnet_dhcp_requests_total": {"type": "discover"},
				"ovs_vnet_dhcp_answers_total":  {"type": "offer"},
				"ovs_vnet_dhcp_refused_total":  {"reason": "rate_limited"},
			} {
				if _, ok := after[name]; !ok || sample(after, name, label) != 0 {
					t.Errorf("%s%v: present %v, value %v; want present at 0", name, label, ok, sample(after, name, label))
				}
			}

			_, body := d.do("GET", "/metrics", nil)
			promtool(t, body)
			for name := range after {
				exposed[name] = true
			}

			promURL := startPrometheus(t, hostNS)
			waitFor(t, "Prometheus to scrape the daemon", func() bool {
				return promQuery(t, hostNS, promURL, `up{job="ovs-vnet"}`) == "1" &&
					promQuery(t, hostNS, promURL, `ovs_vnet_port_rx_packets_total{port="a",network="blue"}`) != ""
			})

			d.must("DELETE", "/v1/ports/b", nil, 204, nil)
			if fams := scrape(t, d); hasPort(fams, "b") {
				t.Errorf("port b's series are still exposed after its delete")
			}
			if fams := scrape(t, d); !hasPort(fams, "a") {
				t.Errorf("port a's series are gone")
			}
		})
	}
	if t.Failed() {
		return
	}
	documented := documentedMetrics(t)
	// Documented, but not exposed by these tests' setups.
	for _, name := range []string{
		"ovs_vnet_openflow_errors_total",    // only once a switch reported an error
		"ovs_vnet_datapath_masks_hit_total", // the kernel datapath only
		"ovs_vnet_datapath_masks",
	} {
		exposed[name] = true
	}
	for name := range exposed {
		if !documented[name] && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("%s is exposed but not in docs/metrics.md", name)
		}
	}
	for name := range documented {
		if !exposed[name] {
			t.Errorf("docs/metrics.md lists %s, which neither backend exposes", name)
		}
	}
}

func scrape(t *testing.T, d *daemon) map[string]*dto.MetricFamily {
	t.Helper()
	_, fams := scrapeBody(t, d)
	return fams
}

// scrapeBody is scrape with the text it parsed.
func scrapeBody(t *testing.T, d *daemon) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	code, body := d.do("GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return body, fams
}

// value is the sample of family name whose port label is port (0 if none).
func value(fams map[string]*dto.MetricFamily, name, port string) float64 {
	f, ok := fams[name]
	if !ok {
		return 0
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "port" && l.GetValue() == port {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func hasPort(fams map[string]*dto.MetricFamily, port string) bool {
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "port" && l.GetValue() == port {
					return true
				}
			}
		}
	}
	return false
}

func promtool(t *testing.T, body []byte) {
	t.Helper()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// documentedMetrics reads the first column of the tables in docs/metrics.md.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cell, ok := strings.CutPrefix(sc.Text(), "| `")
		if !ok {
			continue
		}
		if name, _, ok := strings.Cut(cell, "`"); ok && strings.HasPrefix(name, "ovs_vnet_") {
			names[name] = true
		}
	}
	if len(names) == 0 {
		t.Fatal("docs/metrics.md lists no metric")
	}
	return names
}

// startPrometheus runs a Prometheus server in the host namespace, scraping
// the daemon every second, and returns its base URL there.
func startPrometheus(t *testing.T, hostNS string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := `global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: ovs-vnet
    static_configs: [{targets: ["127.0.0.1:9476"]}]
`
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const listen = "127.0.0.1:9090"
	cmd := exec.Command("ip", "netns", "exec", hostNS, "prometheus",
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen)
	var log testbed.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	return "http://" + listen
}

// promQuery runs an instant query and returns the first sample's value, or
// "" when there is none (or Prometheus is not up yet).
func promQuery(t *testing.T, hostNS, base, query string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dialInNetns("/var/run/netns/" + hostNS)}}
	req, _ := http.NewRequest("GET", base+"/api/v1/query", nil)
	q := req.URL.Query()
	q.Set("query", query)
	req.URL.RawQuery = q.Encode()
	resp, err := client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) == 0 || len(r.Data.Result[0].Value) != 2 {
		return ""
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v
}

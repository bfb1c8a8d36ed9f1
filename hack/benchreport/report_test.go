package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkAttachSeq/ovs-2         	       1	        10.5 p50-ms@100	        12.0 p99-ms@100	        11.0 p50-ms@200	        14.0 p99-ms@200	         1.167 x-p99-growth
BenchmarkAttachSeq/by-hand-ovs-2 	       1	        30 p50-ms@100	        40 p99-ms@100	        300 p50-ms@200	        400 p99-ms@200	        10 x-p99-growth
BenchmarkInstall/flows=100000/ovs-vnet-2         	       1	 700000000 ns/op	        42.5 rss-MB
BenchmarkInstall/flows=100000/ovs-ofctl-bundle-2 	       1	 800000000 ns/op
BenchmarkAtScale/ovs/restart-2   	       1	         0 flow-mods	      1058 ready-ms	        37.75 reconcile-ms
BenchmarkCluster/ovs/propagate-2         	       1	        24.54 p50-ms	        45.37 p99-ms	        20.00 samples	        21.49 put-p50-ms
BenchmarkCluster/ovs/same-host-2         	       1	        21.57 p50-ms	        46.57 p99-ms	        20.00 samples	        21.33 put-p50-ms
BenchmarkCluster/ovs/flows-2             	       1	        27.00 flows-h2@0	       227.0 flows-h2@100	        77.00 flows-h2@25	       127.0 flows-h2@50	        27.00 flows-h3@0	        27.00 flows-h3@100	        27.00 flows-h3@25	        27.00 flows-h3@50	       100.0 ports	         0 remote-ports-h2@0	       100.0 remote-ports-h2@100	        25.00 remote-ports-h2@25	        50.00 remote-ports-h2@50	         0 remote-ports-h3@0	         0 remote-ports-h3@100	         0 remote-ports-h3@25	         0 remote-ports-h3@50
BenchmarkCluster/linux/flows-2           	       1	         0 entries-h2@0	       301.0 entries-h2@100	        76.00 entries-h2@25	       151.0 entries-h2@50	         0 entries-h3@0	         0 entries-h3@100	         0 entries-h3@25	         0 entries-h3@50	       100.0 ports	         0 remote-ports-h2@0	       100.0 remote-ports-h2@100	        25.00 remote-ports-h2@25	        50.00 remote-ports-h2@50	         0 remote-ports-h3@0	         0 remote-ports-h3@100	         0 remote-ports-h3@25	         0 remote-ports-h3@50
--- FAIL: something
ok  	github.com/ovs-vnet/ovs-vnet/e2e	12.876s
`

func TestParse(t *testing.T) {
	r := results{}
	if err := parse(strings.NewReader(sample), r); err != nil {
		t.Fatal(err)
	}
	if len(r) != 9 {
		t.Fatalf("parsed %d benchmarks: %v", len(r), r)
	}
	if v, ok := r.get("AttachSeq/ovs", "x-p99-growth"); !ok || v != 1.167 {
		t.Fatalf("growth %v %v", v, ok)
	}
	if got := r.steps("AttachSeq/ovs", "p99-ms"); !slices.Equal(got, []point{{100, 12}, {200, 14}}) {
		t.Fatalf("steps %v", got)
	}
	if got := flowPoints(r, "ovs-vnet"); !slices.Equal(got, []point{{100000, 700}}) {
		t.Fatalf("flow points %v", got)
	}
	if got := r.steps("Cluster/ovs/flows", "flows-h2"); !slices.Equal(got, []point{{0, 27}, {25, 77}, {50, 127}, {100, 227}}) {
		t.Fatalf("cluster flow steps %v", got)
	}
	// h3's gauge: a series of its own, 0 at every step.
	if got := r.steps("Cluster/linux/flows", "remote-ports-h3"); len(got) != 4 || got[3] != (point{100, 0}) {
		t.Fatalf("remote-ports-h3 steps %v", got)
	}
}

func TestSummary(t *testing.T) {
	r := results{}
	if err := parse(strings.NewReader(sample), r); err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]string{}
	for _, rw := range summary(r) {
		verdicts[rw.figure] = verdict(rw)
	}
	for figure, want := range map[string]string{
		"attach p99, ports 181–200 (ovs)":              "not judged: 200 ports", // 14 ms, 0.035× by hand
		"attach p99 growth, last vs first tenth (ovs)": "not judged: 200 ports",
		"install 100,000 flows":                        "met",
		"restart to ready, no change (ovs)":            "**missed**",
		"/metrics scrape (ovs)":                        "not run",
	} {
		if verdicts[figure] != want {
			t.Errorf("%s: %q, want %q (all: %v)", figure, verdicts[figure], want, verdicts)
		}
	}
}

func TestTicks(t *testing.T) {
	for _, c := range []struct {
		max  float64
		want []float64
	}{
		{0, []float64{0, 1}},
		{9, []float64{0, 2, 4, 6, 8, 10}},
		{1000, []float64{0, 200, 400, 600, 800, 1000}},
		{0.7, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8}},
	} {
		if got := ticks(c.max); !slices.Equal(got, c.want) {
			t.Errorf("ticks(%v) = %v, want %v", c.max, got, c.want)
		}
	}
}

func TestReportAndPlots(t *testing.T) {
	r := results{}
	if err := parse(strings.NewReader(sample), r); err != nil {
		t.Fatal(err)
	}
	var doc bytes.Buffer
	writeReport(&doc, r, machine{date: "today", cpu: "cpu", cores: 2}, map[string]string{"attach-p99": "bench/attach-p99.svg"}, "## Profiles\n")
	for _, want := range []string{"| 200 | 11.0 / 14.0 | 300.0 / 400.0 |", "![attach-p99](bench/attach-p99.svg)", "| 100000 | 700 ms | 800 ms | 0.88 | 0 ms | 42.5 MB |", "## Profiles"} {
		if !strings.Contains(doc.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, doc.String())
		}
	}
	for _, want := range []string{
		"## Cluster: port propagation and what each host holds",
		"| ovs | 20 | 24.5 / 45.4 | 21.6 / 46.6 | +3.0 ms | 21.5 / 21.3 |",
		"| 100 | 100 / 0 | 227 / 27 | 100 / 0 | 301 / 0 |",
		"| per port on h1 | 1.00 / 0.00 | 2.00 / 0.00 | 1.00 / 0.00 | 3.01 / 0.00 |",
	} {
		if !strings.Contains(doc.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, doc.String())
		}
	}
	if strings.Contains(doc.String(), "| linux | ") {
		t.Errorf("report has a propagation row for linux, which the sample does not have")
	}
	svg := charts(r)["attach-p99"].svg()
	if !strings.HasPrefix(svg, "<svg") || strings.Count(svg, "<polyline") != 2 || !strings.Contains(svg, "stroke-dasharray") {
		t.Errorf("attach plot:\n%s", svg)
	}
	// Four series, h3's two dashed (each in its line and its legend).
	svg = charts(r)["cluster-state"].svg()
	if strings.Count(svg, "<polyline") != 4 || strings.Count(svg, "stroke-dasharray") != 4 || !strings.Contains(svg, ">linux entries h3<") {
		t.Errorf("cluster plot:\n%s", svg)
	}
}

func TestClusterNotRun(t *testing.T) {
	var doc bytes.Buffer
	writeCluster(&doc, results{}, nil)
	if !strings.Contains(doc.String(), "Not in this run.") {
		t.Errorf("cluster section without results:\n%s", doc.String())
	}
}

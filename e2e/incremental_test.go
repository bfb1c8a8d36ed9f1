package e2e

import (
	"bufio"
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestLiveChanges shows that each change reaches the datapath on its own:
// routers come and go with traffic following at once, and on OVS a port or
// router change sends only its own flows (the flow-mod counters say how
// many), never a recompute of the table. On OVS it then restarts
// ovs-vswitchd under the daemon, which must restore flows and host routes.
func TestLiveChanges(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.91.0.0/24","masquerade":true}`, 201, nil)
			d.must("PUT", "/v1/networks/red", `{"subnet":"10.92.0.0/24"}`, 201, nil)
			nsB1, nsB2, nsR := newNetns(t, "vnt-b1-"), newNetns(t, "vnt-b2-"), newNetns(t, "vnt-r-")
			d.must("PUT", "/v1/ports/b1", map[string]string{"network": "blue", "netns": nsB1, "ip": "10.91.0.11"}, 201, nil)
			d.must("PUT", "/v1/ports/r1", map[string]string{"network": "red", "netns": nsR, "ip": "10.92.0.11"}, 201, nil)
			ping(t, nsB1, "10.92.0.11", false)

			// Each step and the flow mods and group mods it may cost on OVS: a
			// port in a masquerading network has 7 flows, a router of two
			// networks 4 (a route and a gateway ping each way); the flood
			// group of the port's network changes, nothing else does.
			steps := []struct {
				name  string
				do    func()
				mods  map[string]float64
				check func()
			}{
				{"attach", func() {
					d.must("PUT", "/v1/ports/b2", map[string]string{"network": "blue", "netns": nsB2, "ip": "10.91.0.12"}, 201, nil)
				}, map[string]float64{"flow/add": 7, "group/modify": 1}, func() { ping(t, nsB2, "10.91.0.11", true) }},
				{"router", func() { d.must("PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201, nil) },
					map[string]float64{"flow/add": 4}, func() { ping(t, nsB1, "10.92.0.11", true) }},
				{"same router again", func() { d.must("PUT", "/v1/routers/r1", `{"networks":["red","blue"]}`, 200, nil) },
					map[string]float64{}, func() { ping(t, nsR, "10.91.0.12", true) }},
				{"detach", func() { d.must("DELETE", "/v1/ports/b2", nil, 204, nil) },
					map[string]float64{"flow/delete": 7, "group/modify": 1}, func() { ping(t, nsB1, "10.92.0.11", true) }},
				{"router gone", func() { d.must("DELETE", "/v1/routers/r1", nil, 204, nil) },
					map[string]float64{"flow/delete": 4}, func() { ping(t, nsB1, "10.92.0.11", false) }},
			}
			for _, s := range steps {
				before := modCounters(t, d)
				s.do()
				after := modCounters(t, d)
				if bc.kind == "ovs" {
					for _, k := range []string{"flow/add", "flow/modify", "flow/delete", "group/add", "group/modify", "group/delete"} {
						if got := after[k] - before[k]; got != s.mods[k] {
							t.Errorf("%s: %s mods %v, want %v", s.name, k, got, s.mods[k])
						}
					}
				}
				s.check()
			}
			if box == nil {
				return
			}

			// ovs-vswitchd restarts and forgets its flows and its bridge
			// interface; the daemon restores both when the bridge reconnects.
			d.must("PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201, nil)
			box.RestartVswitchd(t)
			waitFor(t, "ping across the router after the vswitchd restart", func() bool {
				return pingOnce(nsB1, "10.92.0.11")
			})
			waitFor(t, "the host route to blue after the vswitchd restart", func() bool {
				return strings.Contains(testbed.Run(t, "ip", "-n", hostNS, "route", "show", "dev", "br-vnet"), "10.91.0.0/24")
			})
		})
	}
}

// modCounters reads ovs_vnet_openflow_{flow,group}_mods_total by op, keyed
// "flow/add", "group/modify"...
func modCounters(t *testing.T, d *daemon) map[string]float64 {
	t.Helper()
	code, body := d.do("GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		for _, kind := range []string{"flow", "group"} {
			rest, ok := strings.CutPrefix(line, "ovs_vnet_openflow_"+kind+`_mods_total{op="`)
			if !ok {
				continue
			}
			op, val, _ := strings.Cut(rest, `"} `)
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			out[kind+"/"+op] = v
		}
	}
	return out
}

func pingOnce(ns, ip string) bool {
	return exec.Command("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", ip).Run() == nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

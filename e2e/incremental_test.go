package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestLiveChanges shows that each change reaches the datapath on its own:
// routers come and go with traffic following at once, and on OVS a port or
// router change touches only its own flows, never a recompute of the table,
// and a daemon restart sends none: the switch itself counts them (a flow
// monitor on the bridge, its group table and, across the restart, a snoop of
// the controller connection: switchwitness_test.go), not the daemon's
// metrics. On OVS it then restarts ovs-vswitchd under the daemon, which must
// restore flows and host routes.
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
			var flows *flowWatch
			if box != nil {
				flows = watchFlows(t, box, "br-vnet")
			}

			// Each step and the flow and group changes the switch may see on
			// OVS: a port in a masquerading network has 9 flows, a router of
			// two networks 4 (a route and a gateway ping each way); the flood
			// group of the port's network changes, nothing else does.
			steps := []struct {
				name  string
				do    func()
				mods  map[string]int
				check func()
			}{
				{"attach", func() {
					d.must("PUT", "/v1/ports/b2", map[string]string{"network": "blue", "netns": nsB2, "ip": "10.91.0.12"}, 201, nil)
				}, map[string]int{"flow/add": 9, "group/modify": 1}, func() { ping(t, nsB2, "10.91.0.11", true) }},
				{"router", func() { d.must("PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201, nil) },
					map[string]int{"flow/add": 4}, func() { ping(t, nsB1, "10.92.0.11", true) }},
				{"same router again", func() { d.must("PUT", "/v1/routers/r1", `{"networks":["red","blue"]}`, 200, nil) },
					map[string]int{}, func() { ping(t, nsR, "10.91.0.12", true) }},
				{"detach", func() { d.must("DELETE", "/v1/ports/b2", nil, 204, nil) },
					map[string]int{"flow/delete": 9, "group/modify": 1}, func() { ping(t, nsB1, "10.92.0.11", true) }},
				{"router gone", func() { d.must("DELETE", "/v1/routers/r1", nil, 204, nil) },
					map[string]int{"flow/delete": 4}, func() { ping(t, nsB1, "10.92.0.11", false) }},
			}
			for _, s := range steps {
				var groups map[string]string
				if box != nil {
					// What the previous step's checks caused is not this step's.
					flows.changes()
					groups = groupTable(t, box, "br-vnet")
				}
				s.do()
				if box != nil {
					checkSwitchChanges(t, s.name, flows.changes(), groupChanges(groups, groupTable(t, box, "br-vnet")), s.mods)
				}
				s.check()
			}
			if box == nil {
				return
			}

			// A daemon restart on an unchanged model: its reconcile finds the
			// switch as it left it and sends nothing (docs/PIPELINE.md,
			// Restart).
			d.must("PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201, nil)
			snoop := snoopController(t, box, "br-vnet", d)
			flows.changes()
			groups := groupTable(t, box, "br-vnet")
			d.stop()
			d.start()
			checkSwitchChanges(t, "daemon restart", flows.changes(), groupChanges(groups, groupTable(t, box, "br-vnet")), nil)
			if mods := snoop.mods(); len(mods) != 0 {
				t.Errorf("daemon restart: the daemon sent %d table mods (flow, group, meter...), want none:\n%s", len(mods), strings.Join(mods, "\n"))
			}
			ping(t, nsB1, "10.92.0.11", true)

			// ovs-vswitchd restarts and forgets its flows and its bridge
			// interface; the daemon restores both when the bridge reconnects.
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

// checkSwitchChanges compares the flow and group changes the switch saw
// with want, keyed "flow/add", "group/modify"...
func checkSwitchChanges(t testing.TB, step string, flows, groups map[string]int, want map[string]int) {
	t.Helper()
	for kind, got := range map[string]map[string]int{"flow": flows, "group": groups} {
		for _, op := range []string{"add", "modify", "delete"} {
			if k := kind + "/" + op; got[op] != want[k] {
				t.Errorf("%s: the switch saw %d %s changes, want %d", step, got[op], k, want[k])
			}
		}
	}
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

package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestTrace asks the daemon what packets do and holds each verdict against
// real packets: what the trace delivers, ping delivers; what it drops, ping
// cannot get through. On OVS the packet goes through the bridge's real
// tables (ofproto/trace); on Linux the answer is best-effort.
func TestTrace(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.71.0.0/24"}`, 201, nil)
			d.must("PUT", "/v1/networks/red", `{"subnet":"10.72.0.0/24"}`, 201, nil)
			d.must("PUT", "/v1/networks/green", `{"subnet":"10.73.0.0/24","dhcp":false}`, 201, nil)
			d.must("PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201, nil)
			ns := map[string]string{}
			for _, p := range []struct{ name, network string }{{"a1", "blue"}, {"a2", "blue"}, {"r1p", "red"}, {"g1", "green"}} {
				ns[p.name] = newNetns(t, "vnt-"+p.name+"-")
				d.must("PUT", "/v1/ports/"+p.name, map[string]string{"network": p.network, "netns": ns[p.name]}, 201, nil)
			}
			// a1 10.71.0.2, a2 10.71.0.3, r1p 10.72.0.2, g1 10.73.0.2.
			for _, tc := range []struct {
				name, query     string
				verdict, reason string
				port            string // delivered to
				pingFrom, to    string // the real packet that must agree ("" for none)
				stages          []string
				summary         string // the same on both backends, if set
			}{
				{"same network", "from=a1&to=10.71.0.3&proto=tcp&dport=80", v1.Delivered, "", "a2", "a1", "10.71.0.3",
					[]string{"classify", "spoof_guard", "gateway", "egress_ct", "egress_out", "l2_forward", "ingress_ct", "output"}, ""},
				{"across the router", "from=a1&to=10.72.0.2", v1.Delivered, "", "r1p", "a1", "10.72.0.2",
					[]string{"classify", "spoof_guard", "gateway", "egress_ct", "egress_out", "route", "path_mtu", "neighbor", "l2_forward", "ingress_ct", "output"}, ""},
				{"isolated", "from=g1&to=10.71.0.2", v1.Dropped, "isolated", "", "g1", "10.71.0.2",
					[]string{"classify", "spoof_guard", "gateway", "egress_ct", "egress_out", "route"}, ""},
				{"spoofed", "from=a1&to=10.71.0.3&src=10.71.0.99", v1.Dropped, "spoofed", "", "", "",
					[]string{"classify", "spoof_guard"}, ""},
				{"gateway", "from=r1p&to=10.72.0.1", v1.Answered, "", "", "r1p", "10.72.0.1", nil, ""},
				{"nowhere", "from=a1&to=192.0.2.1&proto=udp&dport=53", v1.Dropped, "no_route", "", "", "", nil, ""},
				// A DHCP client's packet, whatever its destination (docs/DHCP.md).
				{"dhcp", "from=a1&to=10.71.0.1&proto=udp&dport=67", v1.Answered, "", "", "", "",
					[]string{"classify", "spoof_guard", "dhcp"}, "answered by the daemon (DHCP of network blue)"},
				{"dhcp to a port", "from=a1&to=10.71.0.3&proto=udp&dport=67", v1.Answered, "", "", "", "",
					[]string{"classify", "spoof_guard", "dhcp"}, "answered by the daemon (DHCP of network blue)"},
				{"dhcp off", "from=g1&to=10.73.0.1&proto=udp&dport=67", v1.Dropped, "dhcp_off", "", "", "",
					[]string{"classify", "spoof_guard", "dhcp"}, ""},
			} {
				var res v1.Result
				d.must("GET", "/v1/trace?"+tc.query, nil, 200, &res)
				if res.Verdict != tc.verdict || res.Reason != tc.reason || (tc.port != "" && strings.Join(res.Ports, ",") != tc.port) {
					t.Errorf("%s: verdict %s reason %q ports %v, want %s %q %s\n%s", tc.name, res.Verdict, res.Reason, res.Ports, tc.verdict, tc.reason, tc.port, res.Raw)
				}
				if res.Summary == "" || res.BestEffort != (bc.kind == "linux") || !strings.Contains(res.Summary, tc.summary) {
					t.Errorf("%s: summary %q, best effort %v", tc.name, res.Summary, res.BestEffort)
				}
				if bc.kind == "ovs" {
					var stages []string
					for _, s := range res.Steps {
						stages = append(stages, s.Stage)
					}
					if tc.stages != nil && strings.Join(stages, " ") != strings.Join(tc.stages, " ") {
						t.Errorf("%s: stages %v, want %v", tc.name, stages, tc.stages)
					}
				}
				if tc.pingFrom != "" {
					if got := pingOnce(ns[tc.pingFrom], tc.to); got != (tc.verdict != v1.Dropped) {
						t.Errorf("%s: the trace says %s, a real ping from %s to %s got through: %v", tc.name, tc.verdict, tc.pingFrom, tc.to, got)
					}
				}
			}

			// Wrong queries: 400 or 404, never a trace.
			for q, want := range map[string]int{
				"from=a1":                                  400,
				"from=a1&to=10.71.0.3&proto=sctp":          400,
				"from=a1&to=10.71.0.3&proto=tcp":           400,
				"from=a1&to=10.71.0.3&dport=99999":         400,
				"from=a1&to=10.71.0.3&bogus=1":             400,
				"from=nobody&to=10.71.0.3":                 404,
				"from=a1&to=10.71.0.3&src_mac=zz":          400,
				"from=a1&from=a2&to=10.71.0.3":             400,
				"from=a1&to=" + url.QueryEscape("fd00::1"): 400,
			} {
				if code, body := d.do("GET", "/v1/trace?"+q, nil); code != want || !strings.Contains(string(body), `"error"`) {
					t.Errorf("trace?%s: %d %s, want %d", q, code, body, want)
				}
			}
			checkFlowsEndpoint(t, d, bc.kind, box)
		})
	}
}

// checkFlowsEndpoint: GET /v1/flows names each flow's owner, and the flows
// of a port are exactly those ovs-ofctl finds under its cookie.
func checkFlowsEndpoint(t *testing.T, d *daemon, kind string, box *testbed.Sandbox) {
	t.Helper()
	if kind != "ovs" {
		if code, body := d.do("GET", "/v1/flows", nil); code != 501 || !strings.Contains(string(body), "nft list table") {
			t.Errorf("flows on %s: %d %s, want 501 pointing at nft", kind, code, body)
		}
		return
	}
	var a1 portView
	d.must("GET", "/v1/ports/a1", nil, 200, &a1)
	var got struct{ Flows []v1.Flow }
	d.must("GET", "/v1/flows?port=a1", nil, 200, &got)
	want := strings.Count(box.Ofctl(t, "dump-flows", "br-vnet", fmt.Sprintf("cookie=0x76040000%08x/-1", a1.Ofport<<16)), "cookie=")
	if len(got.Flows) == 0 || len(got.Flows) != want {
		t.Errorf("flows of port a1: %d, ovs-ofctl finds %d", len(got.Flows), want)
	}
	for _, f := range got.Flows {
		if f.OwnerKind != "port" || f.Owner != "a1" || !strings.HasPrefix(f.Text, "cookie="+f.Cookie) || f.TableName == "" {
			t.Errorf("flow of a1: %+v", f)
		}
	}
	var blue, all struct{ Flows []v1.Flow }
	d.must("GET", "/v1/flows?network=blue", nil, 200, &blue)
	d.must("GET", "/v1/flows", nil, 200, &all)
	owners := map[string]bool{}
	for _, f := range blue.Flows {
		owners[f.OwnerKind+" "+f.Owner] = true
	}
	for _, o := range []string{"network blue", "routes blue", "port a1", "port a2"} {
		if !owners[o] {
			t.Errorf("flows of network blue lack %s: %v", o, owners)
		}
	}
	if owners["port r1p"] || owners["network red"] || len(all.Flows) <= len(blue.Flows) {
		t.Errorf("flows of network blue: %v (all: %d, blue: %d)", owners, len(all.Flows), len(blue.Flows))
	}
	for q, want := range map[string]int{"port=nobody": 404, "network=nobody": 404, "port=a1&network=blue": 400, "table=0": 400} {
		if code, _ := d.do("GET", "/v1/flows?"+q, nil); code != want {
			t.Errorf("flows?%s: %d, want %d", q, code, want)
		}
	}
}

package e2e

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestBadInput sends wrong requests to a daemon on OVS that already has two
// networks, a port and a router joining the networks, and checks each gets its
// documented status with a JSON error — and that nothing changed: API state,
// host links, namespace links, OVS ports.
func TestBadInput(t *testing.T) {
	hostNS := newNetns(t, "vnt-host-")
	box := testbed.StartSandbox(t, repoRoot, hostNS)
	d := startDaemon(t, hostNS, "--backend", "ovs", "--ovsdb", "unix:"+box.DBSock, "--bridge", "br-vnet")
	nsA, nsB := newNetns(t, "vnt-a-"), newNetns(t, "vnt-b-")
	d.must("PUT", "/v1/networks/blue", `{"subnet":"10.71.0.0/24"}`, 201, nil)
	d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": nsA, "ip": "10.71.0.10"}, 201, nil)
	d.must("PUT", "/v1/networks/red", `{"subnet":"10.74.0.0/24"}`, 201, nil)
	d.must("PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201, nil)
	// Someone else's interface in the namespace, which the port must not take over.
	testbed.Run(t, "ip", "-n", nsB, "link", "add", "eth1", "type", "veth", "peer", "name", "eth2")

	huge := `{"subnet":"10.72.0.0/24","gateway":"` + strings.Repeat(" ", 1<<20) + `"}`
	port := func(extra string) string {
		return `{"network":"blue","netns":"` + nsB + `"` + extra + `}`
	}
	type badCase struct {
		name, method, path, body string
		want                     int
	}
	cases := []badCase{
		{"malformed JSON", "PUT", "/v1/networks/green", `{"subnet":`, 400},
		{"empty body", "PUT", "/v1/networks/green", ``, 400},
		{"trailing data", "PUT", "/v1/networks/green", `{"subnet":"10.72.0.0/24"} {}`, 400},
		{"unknown field", "PUT", "/v1/networks/green", `{"subnet":"10.72.0.0/24","vlan":5}`, 400},
		{"bad CIDR", "PUT", "/v1/networks/green", `{"subnet":"10.72.0.0/33"}`, 400},
		{"host bits in subnet", "PUT", "/v1/networks/green", `{"subnet":"10.72.0.1/24"}`, 400},
		{"prefix too long", "PUT", "/v1/networks/green", `{"subnet":"10.72.0.0/31"}`, 400},
		{"gateway outside subnet", "PUT", "/v1/networks/green", `{"subnet":"10.72.0.0/24","gateway":"10.73.0.1"}`, 400},
		{"mtu too small", "PUT", "/v1/networks/green", `{"subnet":"10.72.0.0/24","mtu":100}`, 400},
		{"bad network name", "PUT", "/v1/networks/Green_1", `{"subnet":"10.72.0.0/24"}`, 400},
		{"overlapping subnet", "PUT", "/v1/networks/green", `{"subnet":"10.71.0.128/25"}`, 409},
		{"network with other spec", "PUT", "/v1/networks/blue", `{"subnet":"10.71.0.0/24","mtu":9000}`, 409},
		{"body over 1 MiB", "PUT", "/v1/networks/green", huge, 413},
		{"IP outside the subnet", "PUT", "/v1/ports/b", port(`,"ip":"10.99.0.5"`), 400},
		{"IP is the gateway", "PUT", "/v1/ports/b", port(`,"ip":"10.71.0.1"`), 400},
		{"IP is the broadcast", "PUT", "/v1/ports/b", port(`,"ip":"10.71.0.255"`), 400},
		{"IP already used", "PUT", "/v1/ports/b", port(`,"ip":"10.71.0.10"`), 409},
		{"invalid MAC", "PUT", "/v1/ports/b", port(`,"mac":"02:zz:00:00:00:01"`), 400},
		{"multicast MAC", "PUT", "/v1/ports/b", port(`,"mac":"01:00:5e:00:00:01"`), 400},
		{"zero MAC", "PUT", "/v1/ports/b", port(`,"mac":"00:00:00:00:00:00"`), 400},
		{"bad port name", "PUT", "/v1/ports/-b", port(``), 400},
		{"ifname longer than 15", "PUT", "/v1/ports/b", port(`,"ifname":"a-very-long-name0"`), 400},
		{"ifname with slash", "PUT", "/v1/ports/b", port(`,"ifname":"eth/0"`), 400},
		{"missing namespace", "PUT", "/v1/ports/b", `{"network":"blue","netns":"vnt-does-not-exist"}`, 400},
		{"netns with ..", "PUT", "/v1/ports/b", `{"network":"blue","netns":"/var/run/netns/../x"}`, 400},
		{"unknown network", "PUT", "/v1/ports/b", `{"network":"nope","netns":"` + nsB + `"}`, 404},
		{"unknown type", "PUT", "/v1/ports/b", port(`,"type":"macvlan"`), 400},
		{"tap with netns", "PUT", "/v1/ports/b", port(`,"type":"tap"`), 400},
		{"port with other spec", "PUT", "/v1/ports/a", `{"network":"blue","netns":"` + nsA + `","ip":"10.71.0.11"}`, 409},
		{"ifname taken by another port", "PUT", "/v1/ports/b", `{"network":"blue","netns":"` + nsA + `"}`, 409},
		{"ifname taken by a foreign link", "PUT", "/v1/ports/b", port(`,"ifname":"eth1"`), 409},
		{"bad router name", "PUT", "/v1/routers/R_1", `{"networks":["blue","red"]}`, 400},
		{"router with one network", "PUT", "/v1/routers/r2", `{"networks":["blue"]}`, 400},
		{"router without networks", "PUT", "/v1/routers/r2", `{}`, 400},
		{"router network listed twice", "PUT", "/v1/routers/r2", `{"networks":["blue","blue"]}`, 400},
		{"router with unknown network", "PUT", "/v1/routers/r2", `{"networks":["blue","nope"]}`, 404},
		{"router unknown field", "PUT", "/v1/routers/r2", `{"networks":["blue","red"],"nat":true}`, 400},
		{"delete network in use", "DELETE", "/v1/networks/blue", ``, 409},
		{"delete unknown router", "DELETE", "/v1/routers/zzz", ``, 404},
		{"get unknown router", "GET", "/v1/routers/zzz", ``, 404},
		{"delete unknown port", "DELETE", "/v1/ports/zzz", ``, 404},
		{"get unknown network", "GET", "/v1/networks/zzz", ``, 404},
		{"ports of unknown network", "GET", "/v1/ports?network=zzz", ``, 404},
		{"wrong method", "POST", "/v1/networks/blue", `{}`, 405},
		{"unknown path", "GET", "/v2/networks", ``, 404},
		{"router replaced with unknown network", "PUT", "/v1/routers/r1", `{"networks":["blue","nope"]}`, 404},
		{"delete network a router uses", "DELETE", "/v1/networks/red", ``, 409},
	}

	before := snapshot(t, d, box, hostNS, nsA, nsB)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			code, resp := d.do(c.method, c.path, body)
			var e struct{ Error string }
			if code != c.want || json.Unmarshal(resp, &e) != nil || e.Error == "" {
				t.Fatalf("%s %s: status %d, want %d with a JSON error; body %.300s", c.method, c.path, code, c.want, resp)
			}
			t.Logf("%d %s", code, e.Error)
			if after := snapshot(t, d, box, hostNS, nsA, nsB); !reflect.DeepEqual(before, after) {
				t.Fatalf("state changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// snapshot captures everything a bad request could have changed.
func snapshot(t *testing.T, d *daemon, box *testbed.Sandbox, namespaces ...string) map[string]string {
	t.Helper()
	s := map[string]string{}
	for _, path := range []string{"/v1/networks", "/v1/routers", "/v1/ports"} {
		_, body := d.do("GET", path, nil)
		s[path] = string(body)
	}
	// Spare ports come and go with the daemon's refills, whatever the
	// requests do (datapath/ovs/spares.go); their free ends are vnq….
	spare := func(name string) bool {
		return link.IsSpare(name) || link.IsSpare("vnp"+strings.TrimPrefix(name, "vnq"))
	}
	for _, ns := range namespaces {
		var names []string
		for _, l := range linksIn(t, ns) {
			if !spare(l.Attrs().Name) {
				names = append(names, l.Attrs().Name+"/"+l.Attrs().HardwareAddr.String())
			}
		}
		sort.Strings(names)
		s["links "+ns] = strings.Join(names, " ")
	}
	s["ovs ports"] = strings.Join(bridgePorts(t, box, d.hostNS), " ")
	return s
}

package e2e

import (
	"encoding/json"
	"net"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestBadInput sends wrong requests, on each backend, to a daemon that
// already has two networks, a port in each and a router joining the
// networks, and checks each gets its documented status with a JSON error —
// and that nothing changed: API state, host links, namespace links, OVS
// ports. The addresses the refused ports asked for stay free.
func TestBadInput(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) { badInput(t, bc) })
	}
}

func badInput(t *testing.T, bc backendCase) {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	d := startDaemon(t, hostNS, args...)
	nsA, nsB, nsC := newNetns(t, "vnt-a-"), newNetns(t, "vnt-b-"), newNetns(t, "vnt-c-")
	d.must("PUT", "/v1/networks/blue", `{"subnet":"10.71.0.0/24"}`, 201, nil)
	d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": nsA, "ip": "10.71.0.10"}, 201, nil)
	d.must("PUT", "/v1/networks/red", `{"subnet":"10.74.0.0/24"}`, 201, nil)
	d.must("PUT", "/v1/ports/c", map[string]string{"network": "red", "netns": nsC, "ip": "10.74.0.10"}, 201, nil)
	d.must("PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201, nil)
	// Someone else's interface in the namespace, which the port must not take over.
	testbed.Run(t, "ip", "-n", nsB, "link", "add", "eth1", "type", "veth", "peer", "name", "eth2")

	// The MACs the datapath uses, as the ports and the host see them: the
	// gateways' (blue's is the source of what red routes to blue), and the
	// bridge's own — OVS's integration bridge, or blue's Linux bridge.
	gwBlue, gwRed := gatewayMAC(t, nsA, "10.71.0.1"), gatewayMAC(t, nsC, "10.74.0.1")
	var bridgeMAC string
	if box != nil {
		bridgeMAC = strings.Trim(box.Vsctl(t, "get", "interface", "br-vnet", "mac_in_use"), `"`)
	} else {
		for _, l := range linksIn(t, hostNS) {
			if l.Attrs().Alias == datapath.BridgeAlias("blue") {
				bridgeMAC = l.Attrs().HardwareAddr.String()
			}
		}
	}
	if _, err := net.ParseMAC(bridgeMAC); err != nil {
		t.Fatalf("the bridge's MAC %q: %v", bridgeMAC, err)
	}
	// A port with any of them would be broken; each refusal must leave its
	// address free (checked after the cases).
	const refusedIP = "10.71.0.50"
	withMAC := func(mac string) string {
		return `{"network":"blue","netns":"` + nsB + `","ip":"` + refusedIP + `","mac":"` + mac + `"}`
	}

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
		{"10 MiB of white space after the object", "PUT", "/v1/networks/green", `{"subnet":"10.72.0.0/24"}` + strings.Repeat(" ", 10<<20), 413},
		{"network key twice", "PUT", "/v1/networks/green", `{"subnet":"10.72.0.0/24","subnet":"10.73.0.0/24"}`, 400},
		{"network key in upper case", "PUT", "/v1/networks/green", `{"Subnet":"10.72.0.0/24"}`, 400},
		{"port key twice", "PUT", "/v1/ports/b", `{"network":"blue","netns":"` + nsB + `","network":"red"}`, 400},
		{"port key in another case", "PUT", "/v1/ports/b", `{"network":"blue","netNS":"` + nsB + `"}`, 400},
		{"router key twice", "PUT", "/v1/routers/r2", `{"networks":["blue"],"networks":["blue","red"]}`, 400},
		{"router key in upper case", "PUT", "/v1/routers/r2", `{"NETWORKS":["blue","red"]}`, 400},
		{"MAC of the network's gateway", "PUT", "/v1/ports/b", withMAC(gwBlue), 400},
		{"MAC of the gateway in another case", "PUT", "/v1/ports/b", withMAC(strings.ToUpper(gwBlue)), 400},
		{"MAC of another network's gateway", "PUT", "/v1/ports/b", withMAC(gwRed), 400},
		{"MAC of the bridge", "PUT", "/v1/ports/b", withMAC(bridgeMAC), 400},
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

	before := snapshot(t, d, box, hostNS, nsA, nsB, nsC)
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
			if after := snapshot(t, d, box, hostNS, nsA, nsB, nsC); !reflect.DeepEqual(before, after) {
				t.Fatalf("state changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
	d.must("PUT", "/v1/ports/b", map[string]string{"network": "blue", "netns": nsB, "ip": refusedIP}, 201, nil)
	ping(t, nsB, "10.71.0.10", true)
}

// gatewayMAC is the MAC a port's namespace learns for its gateway: it pings
// the gateway address, which the datapath answers (ARP and ICMP).
func gatewayMAC(t *testing.T, ns, gw string) string {
	t.Helper()
	ping(t, ns, gw, true)
	neighs, err := netlinkIn(t, ns).NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.String() == gw && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr.String()
		}
	}
	t.Fatalf("%s has no neighbour entry for its gateway %s after a ping", ns, gw)
	return ""
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
	if box != nil {
		s["ovs ports"] = strings.Join(bridgePorts(t, box, d.hostNS), " ")
	}
	return s
}

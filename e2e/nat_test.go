package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// Issue 21's acceptance, on both backends: floating IPs and port forwards
// reached from outside, from ports, from the port itself and from the
// host; the sources the servers see; conflicts, cleanup and restarts; and
// security groups judging it all (docs/API.md, docs/NAT.md).

// TestNATFromOutside: the outside reaches a TCP server in a port through a
// floating IP and through a port forward, in a masquerading network and in
// one that does not masquerade, and the server sees the outside's address;
// the port's own connection out comes from its floating address.
func TestNATFromOutside(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			b := newNATBed(t, bc)
			runNATProbes(t, "before any NAT object", []natProbe{
				{what: "outside → web's floating IP", ns: b.outNS, proto: "tcp", to: addrPort(natFIPWeb, natWhoPort)},
				{what: "outside → forward tcp/8080", ns: b.outNS, proto: "tcp", to: addrPort(natHost, 8080)},
			})
			b.putAll(t)
			out := natOutside.String()
			runNATProbes(t, "from outside", []natProbe{
				{what: "outside → web's floating IP", ns: b.outNS, proto: "tcp", to: addrPort(natFIPWeb, natWhoPort), want: out},
				{what: "outside → db's floating IP (no masquerade)", ns: b.outNS, proto: "tcp", to: addrPort(natFIPDB, natWhoPort), want: out},
				{what: "outside → db's floating IP, udp", ns: b.outNS, proto: "udp", to: addrPort(natFIPDB, natUDPPort), want: out},
				{what: "outside → forward tcp/8080 (web)", ns: b.outNS, proto: "tcp", to: addrPort(natHost, 8080), want: out},
				{what: "outside → forward udp/5353 (db)", ns: b.outNS, proto: "udp", to: addrPort(natHost, 5353), want: out},
				{what: "outside → forward tcp/host_ip:8081 (db)", ns: b.outNS, proto: "tcp", to: addrPort(natHost, 8081), want: out},
				{what: "outside → a host port not forwarded", ns: b.outNS, proto: "tcp", to: addrPort(natHost, 8082)},
				{what: "web's own connection out", ns: b.web.ns, proto: "tcp", to: addrPort(natOutside, natOutPort), want: natFIPWeb.String()},
				{what: "db's own connection out (no masquerade)", ns: b.db.ns, proto: "tcp", to: addrPort(natOutside, natOutPort), want: natFIPDB.String()},
				{what: "client out: no floating IP, no masquerade", ns: b.client.ns, proto: "tcp", to: addrPort(natOutside, natOutPort)},
			})
			// Any protocol: a floating IP answers ping.
			if err := testbed.Ping(b.outNS, natFIPDB, 2*time.Second); err != nil {
				t.Errorf("outside → db's floating IP, ping: %v", err)
			}
		})
	}
}

// TestNATHairpinAndHost: a forward and a floating IP reached from the port
// itself (hairpin), from another port in another network through the
// host's address, and from the host on its non-loopback address, tcp and
// udp; each server sees the address the client dialled. Loopback is not
// forwarded, and the host reaches no port but through a forward or a
// floating IP.
func TestNATHairpinAndHost(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			b := newNATBed(t, bc)
			b.putAll(t)
			host := natHost.String()
			runNATProbes(t, "hairpin, other ports, the host", []natProbe{
				{what: "web → its own forward (hairpin)", ns: b.web.ns, proto: "tcp", to: addrPort(natHost, 8080), want: host},
				{what: "web → its own floating IP (hairpin)", ns: b.web.ns, proto: "tcp", to: addrPort(natFIPWeb, natWhoPort), want: natFIPWeb.String()},
				{what: "db → its own forward, udp (hairpin)", ns: b.db.ns, proto: "udp", to: addrPort(natHost, 5353), want: host},
				{what: "client (nred) → web's forward (nblue)", ns: b.client.ns, proto: "tcp", to: addrPort(natHost, 8080), want: host},
				{what: "client → web's floating IP", ns: b.client.ns, proto: "tcp", to: addrPort(natFIPWeb, natWhoPort), want: natFIPWeb.String()},
				{what: "client → db's forward, udp (same network)", ns: b.client.ns, proto: "udp", to: addrPort(natHost, 5353), want: host},
				{what: "web (nblue) → db's forward (nred)", ns: b.web.ns, proto: "tcp", to: addrPort(natHost, 8081), want: host},
				{what: "host → forward tcp/8080", ns: b.hostNS, proto: "tcp", to: addrPort(natHost, 8080), want: host},
				{what: "host → forward udp/5353", ns: b.hostNS, proto: "udp", to: addrPort(natHost, 5353), want: host},
				{what: "host → web's floating IP", ns: b.hostNS, proto: "tcp", to: addrPort(natFIPWeb, natWhoPort), want: host},
				{what: "host → 127.0.0.1:8080, not forwarded", ns: b.hostNS, proto: "tcp", to: addrPort(netip.MustParseAddr("127.0.0.1"), 8080)},
				{what: "host → web directly", ns: b.hostNS, proto: "tcp", to: addrPort(b.web.ip, natWhoPort)},
				{what: "host → client directly (no NAT object)", ns: b.hostNS, proto: "tcp", to: addrPort(b.client.ip, natWhoPort)},
			})
		})
	}
}

// TestNATConflictAndCleanup: what the API refuses, with nothing changed;
// a restart that sends nothing and keeps connections; deleting a floating
// IP cuts its connections; deleting a port takes its objects and every
// rule naming them out of the host's ruleset.
func TestNATConflictAndCleanup(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			b := newNATBed(t, bc)
			d := b.d
			b.putAll(t)
			before := nftRuleset(t, b.hostNS)
			for _, c := range []struct {
				what, path string
				body       any
				status     int
			}{
				{"the same host port", "/v1/port-forwards/again", natFwdWeb, 409},
				{"the same host port on one address", "/v1/port-forwards/again",
					map[string]any{"port": "client", "host_port": 8080, "host_ip": hostOutsideIP}, 409},
				{"a port that does not exist", "/v1/port-forwards/again", map[string]any{"port": "nope", "host_port": 9999}, 404},
				{"host port 0", "/v1/port-forwards/again", map[string]any{"port": "client", "host_port": 0}, 400},
				{"a taken floating address", "/v1/floating-ips/again", map[string]string{"address": natFIPWeb.String(), "port": "client"}, 409},
				{"an address in a subnet", "/v1/floating-ips/again", map[string]string{"address": "10.82.0.99", "port": "client"}, 409},
				{"the host's own address", "/v1/floating-ips/again", map[string]string{"address": hostOutsideIP, "port": "client"}, 409},
				{"a second floating IP of a port", "/v1/floating-ips/again", map[string]string{"address": "203.0.113.99", "port": "web"}, 409},
				{"loopback", "/v1/floating-ips/again", map[string]string{"address": "127.0.0.2", "port": "client"}, 400},
				{"the uplink's broadcast address", "/v1/floating-ips/again", map[string]string{"address": "198.51.100.255", "port": "client"}, 409},
				{"a host_ip not the host's", "/v1/port-forwards/again",
					map[string]any{"port": "client", "protocol": "udp", "host_port": 53, "host_ip": "8.8.8.8"}, 409},
				{"the overlay's VXLAN port", "/v1/port-forwards/again", map[string]any{"port": "client", "protocol": "udp", "host_port": 4789}, 400},
			} {
				if code, body := d.do("PUT", c.path, c.body); code != c.status {
					t.Errorf("%s: %d %s, want %d", c.what, code, body, c.status)
				}
			}
			d.must("PUT", "/v1/networks/clash", map[string]any{"subnet": "203.0.113.0/24"}, 409, nil)
			if after := nftRuleset(t, b.hostNS); after != before {
				t.Errorf("refused requests changed the ruleset:\nbefore\n%s\nafter\n%s", before, after)
			}
			// Another protocol on the same host port is no conflict.
			d.must("PUT", "/v1/port-forwards/udp8080", map[string]any{"port": "client", "protocol": "udp", "host_port": 8080, "target_port": natUDPPort}, 201, nil)

			// A host_ip is translated only while the host has it: one it
			// has lost is a third party's, whose connections are not the
			// forward's (the daemon is not told; the rule's fib check is).
			lost := netip.MustParseAddr("192.0.2.77")
			testbed.Run(t, "ip", "-n", b.hostNS, "addr", "add", lost.String()+"/32", "dev", "lo")
			d.must("PUT", "/v1/port-forwards/lost", map[string]any{"port": "client", "host_port": 8083, "target_port": natWhoPort, "host_ip": lost.String()}, 201, nil)
			toLost := natProbe{what: "web → forward tcp/host_ip:8083 (client)", ns: b.web.ns, proto: "tcp", to: addrPort(lost, 8083)}
			has := toLost
			has.want = lost.String()
			runNATProbes(t, "a host_ip the host has", []natProbe{has})
			testbed.Run(t, "ip", "-n", b.hostNS, "addr", "del", lost.String()+"/32", "dev", "lo")
			runNATProbes(t, "a host_ip the host lost", []natProbe{toLost})
			d.must("DELETE", "/v1/port-forwards/lost", nil, 204, nil)

			// A restart with nothing changed sends no NAT table and no flow,
			// and a connection through the floating IP lives on.
			conn, err := testbed.Connect(b.outNS, addrPort(natFIPWeb, natEchoPort), 3*time.Second)
			if err != nil {
				t.Fatalf("outside → web's echo through its floating IP: %v", err)
			}
			defer conn.Close()
			if err := testbed.Echo(conn, 3*time.Second); err != nil {
				t.Fatalf("echo before the restart: %v", err)
			}
			events := testbed.NftMonitor(t, b.hostNS)
			d.stop()
			d.start()
			if ev := events(); strings.Contains(ev, "ovs_vnet_nat") {
				t.Errorf("the restart re-sent the NAT table:\n%s", ev)
			}
			if _, body := d.do("GET", "/metrics", nil); bc.kind == "ovs" && !strings.Contains(string(body), `ovs_vnet_openflow_flow_mods_total{op="add"} 0`) {
				t.Errorf("the restart added flows")
			}
			if err := testbed.Echo(conn, 3*time.Second); err != nil {
				t.Errorf("the connection did not live through the restart: %v", err)
			}

			// Deleting the floating IP cuts its connections at once.
			d.must("DELETE", "/v1/floating-ips/fipweb", nil, 204, nil)
			if err := testbed.Echo(conn, 2*time.Second); err == nil {
				t.Errorf("a connection through a deleted floating IP still echoes")
			}
			d.must("DELETE", "/v1/floating-ips/fipweb", nil, 404, nil)

			// Deleting a port deletes its forwards: the outside's attempt
			// fails, and the ruleset holds nothing of them.
			d.must("PUT", "/v1/floating-ips/fipweb", map[string]string{"address": natFIPWeb.String(), "port": "web"}, 201, nil)
			runNATProbes(t, "web's objects back", []natProbe{
				{what: "outside → web's floating IP", ns: b.outNS, proto: "tcp", to: addrPort(natFIPWeb, natWhoPort), want: outsideIP},
				{what: "outside → forward tcp/8080", ns: b.outNS, proto: "tcp", to: addrPort(natHost, 8080), want: outsideIP},
			})
			d.must("DELETE", "/v1/ports/web", nil, 204, nil)
			d.must("GET", "/v1/port-forwards/fwdweb", nil, 404, nil)
			d.must("GET", "/v1/floating-ips/fipweb", nil, 404, nil)
			runNATProbes(t, "web deleted", []natProbe{
				{what: "outside → web's floating IP", ns: b.outNS, proto: "tcp", to: addrPort(natFIPWeb, natWhoPort)},
				{what: "outside → forward tcp/8080", ns: b.outNS, proto: "tcp", to: addrPort(natHost, 8080)},
				{what: "outside → db's forward", ns: b.outNS, proto: "tcp", to: addrPort(natHost, 8081), want: outsideIP},
			})
			rs := nftRuleset(t, b.hostNS)
			for _, gone := range []string{natFIPWeb.String(), "fipweb", "fwdweb", b.web.ip.String()} {
				if strings.Contains(rs, gone) {
					t.Errorf("the ruleset still holds %s of deleted port web:\n%s", gone, rs)
				}
			}
			// The last objects gone, the NAT table goes too.
			d.must("DELETE", "/v1/ports/db", nil, 204, nil)
			d.must("DELETE", "/v1/port-forwards/udp8080", nil, 204, nil)
			if rs := nftRuleset(t, b.hostNS); strings.Contains(rs, "ovs_vnet_nat") {
				t.Errorf("no NAT object left, but the ruleset has the NAT table:\n%s", rs)
			}
		})
	}
}

// TestNATSecurityGroups: the target port's ingress rules judge forwarded
// connections by the source the port sees: a rule that does not allow the
// outside's address blocks the forward, one that does lets it through, and
// the host is judged by the address it used.
func TestNATSecurityGroups(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			b := newNATBed(t, bc)
			d := b.d
			b.putAll(t)
			fromOut := natProbe{what: "outside → forward tcp/8080", ns: b.outNS, proto: "tcp", to: addrPort(natHost, 8080)}
			fromFIP := natProbe{what: "outside → web's floating IP", ns: b.outNS, proto: "tcp", to: addrPort(natFIPWeb, natWhoPort)}
			fromHost := natProbe{what: "host → forward tcp/8080", ns: b.hostNS, proto: "tcp", to: addrPort(natHost, 8080)}
			fromPort := natProbe{what: "client → forward tcp/8080", ns: b.client.ns, proto: "tcp", to: addrPort(natHost, 8080)}
			with := func(p natProbe, want string) natProbe { p.want = want; return p }

			d.must("PUT", "/v1/security-groups/webin", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"80","remote":"10.0.0.0/8"}]}`, 201, nil)
			d.must("PUT", "/v1/ports/web", b.web.spec("webin"), 200, nil)
			runNATProbes(t, "ingress from 10.0.0.0/8 only", []natProbe{fromOut, fromFIP, fromHost, fromPort})

			d.must("PUT", "/v1/security-groups/webin", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"80","remote":"198.51.100.2/32"}]}`, 200, nil)
			runNATProbes(t, "ingress from the outside only", []natProbe{
				with(fromOut, outsideIP), with(fromFIP, outsideIP), fromHost, fromPort})

			d.must("PUT", "/v1/security-groups/webin", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"80","remote":"198.51.100.0/24"}]}`, 200, nil)
			runNATProbes(t, "ingress from the uplink's subnet: the host's address too", []natProbe{
				with(fromOut, outsideIP), with(fromFIP, outsideIP), with(fromHost, hostOutsideIP), with(fromPort, hostOutsideIP)})
		})
	}
}

// TestNATForeignDNAT: another tool's DNAT on the host (a Docker published
// port, a kube-proxy service: here a table of the test's own in the host's
// namespace) whose target is outside our networks takes a port only where
// the port may go out. A port of a network that neither masquerades nor
// has a floating IP dials a "ClusterIP" on a forward's host port (the
// forward's flow brings it to the host on OVS, routing on Linux), and its
// gateway (a host address on Linux; on OVS the flows keep a subnet's
// addresses), and the foreign DNAT sends both to the outside: refused. A
// masquerading network's port, the control, goes out. And another tool's
// container that uses a floating port's address goes out with its own
// source, not the floating address.
func TestNATForeignDNAT(t *testing.T) {
	clusterIP := netip.MustParseAddr("10.96.0.10")
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			b := newNATBed(t, bc)
			b.d.must("PUT", "/v1/port-forwards/fwdweb", natFwdWeb, 201, nil)
			// The outside routes the isolated network back, so that
			// nothing but the host's forward chain stands in the way.
			testbed.Run(t, "ip", "-n", b.outNS, "route", "add", "10.82.0.0/24", "via", hostOutsideIP)
			foreign := `table ip foreigntest {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr { ` + clusterIP.String() + `, 10.82.0.1 } tcp dport 8080 dnat to ` + outsideIP + `:` + fmt.Sprint(natOutPort) + `
	}
}
`
			cmd := exec.Command("ip", "netns", "exec", b.hostNS, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(foreign)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("foreign table: %v\n%s", err, out)
			}
			runNATProbes(t, "through another tool's DNAT to the outside", []natProbe{
				{what: "client (nred: no masquerade, no floating IP) → ClusterIP:8080", ns: b.client.ns, proto: "tcp",
					to: addrPort(clusterIP, 8080)},
				{what: "client → its gateway:8080", ns: b.client.ns, proto: "tcp", to: addrPort(netip.MustParseAddr("10.82.0.1"), 8080)},
				{what: "web (nblue masquerades) → ClusterIP:8080", ns: b.web.ns, proto: "tcp", to: addrPort(clusterIP, 8080), want: hostOutsideIP},
			})

			// Another tool's container with db's address behind a link of
			// its own: db's floating SNAT is not its. The host sends the
			// outside's answers to that address back to its link.
			b.d.must("PUT", "/v1/floating-ips/fipdb", map[string]string{"address": natFIPDB.String(), "port": "db"}, 201, nil)
			fns := newNetns(t, "vnt-fc-")
			for _, args := range [][]string{
				{"-n", b.hostNS, "link", "add", "vnt-fx0", "type", "veth", "peer", "name", "eth0", "netns", fns},
				{"-n", b.hostNS, "addr", "add", "169.254.77.1/32", "dev", "vnt-fx0"},
				{"-n", b.hostNS, "link", "set", "vnt-fx0", "up"},
				{"-n", b.hostNS, "rule", "add", "iif", "vnt-up0", "to", b.db.ip.String(), "lookup", "177"},
				{"-n", b.hostNS, "route", "add", b.db.ip.String(), "dev", "vnt-fx0", "table", "177"},
				{"-n", fns, "addr", "add", b.db.ip.String() + "/32", "dev", "eth0"},
				{"-n", fns, "link", "set", "eth0", "up"},
				{"-n", fns, "route", "add", "169.254.77.1", "dev", "eth0"},
				{"-n", fns, "route", "add", "default", "via", "169.254.77.1"},
			} {
				testbed.Run(t, "ip", args...)
			}
			// Its source is also a route through our bridge: loosen the
			// reverse-path check on its link.
			testbed.Run(t, "ip", "netns", "exec", b.hostNS, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.vnt-fx0.rp_filter=0")
			serveWho(t, b.outNS, nil, []uint16{natOutPort})
			runNATProbes(t, "another tool's container with a floating port's address", []natProbe{
				{what: "foreign 10.82.0.10 → outside, udp", ns: fns, proto: "udp", to: addrPort(natOutside, natOutPort), want: b.db.ip.String()},
			})
		})
	}
}

package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestNATSurface drives floating IPs and port forwards the way users reach
// them, on each backend: made, listed, shown and deleted with vnetctl, the
// traffic through them counted in /metrics (which promtool accepts) and in
// get --stats, and a floating IP in the topology.
func TestNATSurface(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) { runNATSurface(t, bc) })
	}
}

func runNATSurface(t *testing.T, bc backendCase) {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	sock := filepath.Join(t.TempDir(), "api.sock")
	d := startSocketDaemon(t, hostNS, sock, args...)
	cli := newVnetctl(t, "VNETCTL_SERVER=unix:"+sock)
	outNS := newOutside(t, hostNS)
	testbed.Run(t, "ip", "-n", outNS, "route", "add", "203.0.113.0/24", "via", hostOutsideIP)
	serveWho(t, outNS, []uint16{natOutPort}, nil)

	cli.ok("network", "create", "blue", "--subnet", "10.98.0.0/24", "--masquerade")
	nsW := newNetns(t, "vnt-nw-")
	cli.ok("port", "create", "web", "--network", "blue", "--netns", nsW, "--ip", "10.98.0.10")
	serveWho(t, nsW, []uint16{natWhoPort}, nil)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"floating-ip", "create", "pub", "--address", natFIPWeb.String(), "--port", "web"}, "floating-ip pub created (203.0.113.10 -> web 10.98.0.10)\n"},
		{[]string{"fip", "create", "pub", "--address", natFIPWeb.String(), "--port", "web"}, "floating-ip pub unchanged (203.0.113.10 -> web 10.98.0.10)\n"},
		{[]string{"port-forward", "create", "http", "--port", "web", "--host-port", "8080", "--target-port", "80"}, "port-forward http created (tcp/8080 -> web 10.98.0.10:80)\n"},
		{[]string{"pf", "list", "--port", "web", "-o", "name"}, "port-forward/http\n"},
		{[]string{"fip", "ls", "-o", "name"}, "floating-ip/pub\n"},
	} {
		if out := cli.ok(c.args...); out != c.want {
			t.Errorf("vnetctl %s: %q, want %q", strings.Join(c.args, " "), out, c.want)
		}
	}
	cli.run("pf", "create", "again", "--port", "web", "--host-port", "8080").fails(t, 4, "(HTTP 409)")
	cli.run("fip", "create", "pub2", "--address", "203.0.113.11", "--port", "nope").fails(t, 3, `port "nope"`, "(HTTP 404)")
	if out := cli.ok("topology"); !strings.Contains(out, "floating-ip pub: 203.0.113.10 -> port web (10.98.0.10)\n") {
		t.Errorf("topology shows no floating IP:\n%s", out)
	}

	before := scrape(t, d)
	runNATProbes(t, "traffic to count", []natProbe{
		{what: "outside → forward 1", ns: outNS, proto: "tcp", to: addrPort(natHost, 8080), want: outsideIP},
		{what: "outside → forward 2", ns: outNS, proto: "tcp", to: addrPort(natHost, 8080), want: outsideIP},
		{what: "outside → floating IP", ns: outNS, proto: "tcp", to: addrPort(natFIPWeb, natWhoPort), want: outsideIP},
		{what: "web out", ns: nsW, proto: "tcp", to: addrPort(natOutside, natOutPort), want: natFIPWeb.String()},
	})
	fwd, fipIn, fipOut := map[string]string{"forward": "http"},
		map[string]string{"floating_ip": "pub", "direction": "in"}, map[string]string{"floating_ip": "pub", "direction": "out"}
	var body []byte
	waitFor(t, "the NAT counters to count the connections", func() bool {
		b, after := scrapeBody(t, d)
		body = b
		grew := func(name string, labels map[string]string, min float64) bool {
			return sample(after, name, labels)-sample(before, name, labels) >= min
		}
		return grew("ovs_vnet_port_forward_connections_total", fwd, 2) && grew("ovs_vnet_port_forward_packets_total", fwd, 6) &&
			grew("ovs_vnet_port_forward_bytes_total", fwd, 300) &&
			grew("ovs_vnet_floating_ip_connections_total", fipIn, 1) && grew("ovs_vnet_floating_ip_connections_total", fipOut, 1)
	})
	promtool(t, body)
	var f v1.PortForward
	cli.json(&f, "pf", "get", "http", "--stats")
	if f.Stats == nil || f.Stats.Connections < 2 || f.Stats.Packets < 6 || f.IP.String() != "10.98.0.10" || f.TargetPort != 80 {
		t.Errorf("pf get http --stats: %+v (stats %+v)", f, f.Stats)
	}
	if out := cli.ok("fip", "show", "pub", "--stats"); !strings.Contains(out, "CONNECTIONS-IN") {
		t.Errorf("fip show pub --stats:\n%s", out)
	}

	// The trace from outside names the object that translates, then
	// follows the translated packet into the network.
	out := cli.ok("trace", "--from-address", outsideIP, "--to", hostOutsideIP, "--proto", "tcp", "--dport", "8080")
	t.Logf("vnetctl trace --from-address %s --to %s --proto tcp --dport 8080:\n%s", outsideIP, hostOutsideIP, out)
	if !strings.Contains(out, "port-forward http") || !strings.Contains(out, "dnat to 10.98.0.10:80") || !strings.Contains(out, "Verdict: DNAT by port-forward http to port web; then delivered") {
		t.Errorf("trace from outside through forward http:\n%s", out)
	}
	if out := cli.ok("trace", "--from-address", outsideIP, "--to", hostOutsideIP, "--proto", "tcp", "--dport", "8082"); !strings.Contains(out, "not forwarded by ovs-vnet") {
		t.Errorf("trace from outside to a port not forwarded:\n%s", out)
	}

	// Deleting the port deletes its objects and their series.
	cli.ok("port", "delete", "web")
	cli.run("pf", "get", "http").fails(t, 3, "(HTTP 404)")
	if fams := scrape(t, d); sample(fams, "ovs_vnet_port_forward_connections_total", fwd) != 0 {
		t.Errorf("the series of a deleted forward are still exposed")
	}
	cli.ok("network", "delete", "blue")
	d.stop()
	assertNothingLeft(t, hostNS, box, d.stateDir, nsW)
}

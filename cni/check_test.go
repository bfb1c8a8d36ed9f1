package cni

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// testPort is a port as the daemon answers it.
func testPort() v1.Port {
	return v1.Port{Name: PortName("c1", "eth0"), Network: "blue", Type: "veth", Netns: "/var/run/netns/a",
		Ifname: "eth0", IP: "10.10.0.5/24", MAC: "02:00:00:00:00:0a", Gateway: "10.10.0.1", HostIfname: "vnet0123456789"}
}

func TestMatchPort(t *testing.T) {
	checkPort := testPort()
	for _, c := range []struct {
		name, network, netns, ifname, wantErr string
	}{
		{"same", "blue", "/var/run/netns/a", "eth0", ""},
		{"other network", "red", "/var/run/netns/a", "eth0", "network blue"},
		{"other netns", "blue", "/var/run/netns/b", "eth0", "netns /var/run/netns/a"},
		{"other ifname", "blue", "/var/run/netns/a", "net1", "interface is eth0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := matchPort(checkPort, c.network, c.netns, c.ifname)
			if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("err %v, want %q", err, c.wantErr)
			}
		})
	}
	// A port made with an ip-netns name matches the path the runtime gives.
	named := checkPort
	named.Netns = "a"
	if err := matchPort(named, "blue", "/var/run/netns/a", "eth0"); err != nil {
		t.Fatal(err)
	}
}

func TestMatchPrevResult(t *testing.T) {
	checkPort := testPort()
	good, err := BuildResult(checkPort, "/var/run/netns/a", "eth0", true)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(good)
	for _, c := range []struct {
		name    string
		edit    func(m map[string]any)
		wantErr string
	}{
		{name: "the result of ADD", edit: func(map[string]any) {}},
		{name: "no interface", edit: func(m map[string]any) { m["interfaces"] = m["interfaces"].([]any)[:1] },
			wantErr: "no interface eth0 in a sandbox"},
		{name: "other mac", edit: func(m map[string]any) {
			m["interfaces"].([]any)[1].(map[string]any)["mac"] = "02:00:00:00:00:99"
		}, wantErr: "mac 02:00:00:00:00:99"},
		{name: "mac in capitals", edit: func(m map[string]any) {
			m["interfaces"].([]any)[1].(map[string]any)["mac"] = "02:00:00:00:00:0A"
		}},
		{name: "other address", edit: func(m map[string]any) {
			m["ips"].([]any)[0].(map[string]any)["address"] = "10.10.0.6/24"
		}, wantErr: "addresses [10.10.0.6/24]"},
		{name: "address on the host end", edit: func(m map[string]any) { m["ips"].([]any)[0].(map[string]any)["interface"] = 0 },
			wantErr: "addresses []"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			c.edit(m)
			edited, _ := json.Marshal(m)
			prev, err := create.Create("1.1.0", edited)
			if err != nil {
				t.Fatal(err)
			}
			err = matchPrevResult(prev, checkPort, "eth0")
			if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("err %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestDefaultRouteOf(t *testing.T) {
	gw := net.ParseIP("10.10.0.1")
	_, zero, _ := net.ParseCIDR("0.0.0.0/0")
	_, subnet, _ := net.ParseCIDR("10.10.0.0/24")
	const index = 7 // the port's interface
	for _, c := range []struct {
		name       string
		routes     []netlink.Route
		ours, held bool
	}{
		{"nil dst", []netlink.Route{{LinkIndex: index, Gw: gw}}, true, true},
		{"zero dst", []netlink.Route{{LinkIndex: index, Dst: subnet}, {LinkIndex: index, Dst: zero, Gw: gw}}, true, true},
		{"other gateway", []netlink.Route{{LinkIndex: index, Dst: zero, Gw: net.ParseIP("10.10.0.254")}}, false, true},
		{"other interface", []netlink.Route{{LinkIndex: 3, Dst: zero, Gw: gw}}, false, true},
		{"beside another's", []netlink.Route{{LinkIndex: 3, Gw: net.ParseIP("192.0.2.1")}, {LinkIndex: index, Gw: gw, Priority: 100}}, true, true},
		{"subnet route only", []netlink.Route{{LinkIndex: index, Dst: subnet}}, false, false},
		{"none", nil, false, false},
	} {
		if ours, held := defaultRouteOf(c.routes, index, gw); ours != c.ours || held != c.held {
			t.Errorf("%s: ours %v held %v, want %v %v", c.name, ours, held, c.ours, c.held)
		}
	}
}

// TestCheckDefaultRoute: CHECK wants the port's default route only where
// the namespace has none: it passes where another interface holds it (the
// daemon left that one alone) and fails where the namespace has none,
// unless the port is a secondary (default_route false), which wants none.
func TestCheckDefaultRoute(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, to make and enter network namespaces")
	no := false
	for _, c := range []struct {
		via       string // addNetns
		secondary bool
		wantMsg   string // "" for success
	}{
		{via: "eth0"},
		{via: "up0"},
		{via: "", wantMsg: "no default route via 10.10.0.1 on eth0, and none in the namespace"},
		{via: "", secondary: true},
	} {
		t.Run(fmt.Sprintf("via %s secondary %v", c.via, c.secondary), func(t *testing.T) {
			path := addNetns(t, c.via)
			port := testPort()
			port.Netns, port.MAC = path, "02:00:00:00:00:05"
			if c.secondary {
				port.DefaultRoute = &no
			}
			f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, port) })
			err := fastPlugin(io.Discard).Check(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: path, StdinData: netconf(f.URL, "")})
			if (c.wantMsg == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("err %v, want %q", err, c.wantMsg)
			}
		})
	}
}

// TestCheck runs CHECK against a fake daemon; the namespace it looks into is
// the test's own, only read, for an interface no host has.
func TestCheck(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, to enter a network namespace")
	const ifname = "vnt-nope0"
	for _, c := range []struct {
		name     string
		exists   bool // the daemon has the port
		netns    string
		wantCode uint
		wantMsg  string
	}{
		{name: "no port", netns: selfNetns, wantCode: types.ErrUnknownContainer, wantMsg: "has no port"},
		{name: "interface gone", exists: true, netns: selfNetns, wantCode: types.ErrInternal,
			wantMsg: "interface vnt-nope0 does not exist in netns /proc/self/ns/net"},
		{name: "netns gone", exists: true, netns: "/var/run/netns/vnt-does-not-exist",
			wantCode: types.ErrInternal, wantMsg: "netns /var/run/netns/vnt-does-not-exist does not exist"},
	} {
		t.Run(c.name, func(t *testing.T) {
			port := testPort()
			port.Name, port.Netns, port.Ifname = PortName("c1", ifname), c.netns, ifname
			f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
				if !c.exists || r.URL.Path != "/v1/ports/"+port.Name {
					daemonErr(w, 404, "not found: port")
					return
				}
				answer(w, 200, port)
			})
			err := fastPlugin(io.Discard).Check(&skel.CmdArgs{ContainerID: "c1", IfName: ifname, Netns: c.netns, StdinData: netconf(f.URL, "")})
			if cniCode(err) != c.wantCode || !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("err %v (code %d), want code %d containing %q", err, cniCode(err), c.wantCode, c.wantMsg)
			}
		})
	}
}

// TestCheckPortDown: a port the daemon finds down fails CHECK with the
// daemon's reason and detail, though the namespace shows nothing wrong (the
// daemon watches the host end and the switch, which the namespace cannot).
func TestCheckPortDown(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, to make and enter network namespaces")
	path := addNetns(t, "eth0")
	port := testPort()
	port.Netns, port.MAC = path, "02:00:00:00:00:05"
	port.Status, port.StatusReason, port.StatusDetail = v1.PortDown, "not_bound", "interface vnet0123456789 has no ofport"
	f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, port) })
	err := fastPlugin(io.Discard).Check(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: path, StdinData: netconf(f.URL, "")})
	want := "check of port " + port.Name + " failed: the port does not forward: not_bound: interface vnet0123456789 has no ofport"
	if cniCode(err) != types.ErrInternal || err == nil || err.Error() != want {
		t.Fatalf("err %v (code %d), want code %d: %s", err, cniCode(err), types.ErrInternal, want)
	}
	port.Status, port.StatusReason, port.StatusDetail = v1.PortForwarding, "", ""
	if err := fastPlugin(io.Discard).Check(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: path, StdinData: netconf(f.URL, "")}); err != nil {
		t.Fatalf("CHECK of the port forwarding again: %v", err)
	}
}

package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// check fails the test unless r exited with code, printed exactly out (when
// out is not "*") and printed errPart somewhere on stderr.
func check(t *testing.T, r result, code int, out, errPart string) {
	t.Helper()
	if r.code != code || (out != "*" && r.out != out) || !strings.Contains(r.errOut, errPart) {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant it to contain %q", r.code, code, r.out, out, r.errOut, errPart)
	}
}

func TestNetworkCommands(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "network", "list"), 0, "", "No networks found.\n")
	check(t, f.vnetctl(t, nil, "network", "list", "-o", "json"), 0, "[]\n", "")
	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24"), 0, "network blue created\n", "")
	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24", "--mtu", "1500"), 0, "network blue unchanged\n", "")
	check(t, f.vnetctl(t, nil, "net", "create", "blue", "--subnet", "10.10.0.0/24", "--mtu", "9000"), ExitConflict, "",
		"Error: conflict: network \"blue\" exists with a different spec (HTTP 409)\n")
	r := f.vnetctl(t, nil, "network", "create", "red", "--subnet", "10.20.0.0/24", "--gateway", "10.20.0.254", "--mtu", "9000", "--masquerade", "-o", "json")
	var red v1.Network
	if err := json.Unmarshal([]byte(r.out), &red); err != nil || r.code != 0 {
		t.Fatalf("create -o json: exit %d, %v: %s", r.code, err, r.out)
	}
	if red.Name != "red" || red.Gateway.String() != "10.20.0.254" || red.MTU != 9000 || !red.Masquerade || red.ID != 2 {
		t.Fatalf("created %+v", red)
	}
	check(t, f.vnetctl(t, nil, "network", "ls"), 0, ""+
		"NAME   SUBNET         GATEWAY       MTU    MASQ   DHCP   ID\n"+
		"blue   10.10.0.0/24   10.10.0.1     1500   no     yes    1\n"+
		"red    10.20.0.0/24   10.20.0.254   9000   yes    yes    2\n", "")
	check(t, f.vnetctl(t, nil, "network", "get", "red"), 0, ""+
		"NAME   SUBNET         GATEWAY       MTU    MASQ   DHCP   ID\n"+
		"red    10.20.0.0/24   10.20.0.254   9000   yes    yes    2\n"+
		"dhcp: yes\ndns: -\ndomain: -\n", "")
	check(t, f.vnetctl(t, nil, "network", "list", "-o", "name"), 0, "network/blue\nnetwork/red\n", "")
	r = f.vnetctl(t, nil, "network", "list", "-o", "json")
	var nets []v1.Network
	if err := json.Unmarshal([]byte(r.out), &nets); err != nil || len(nets) != 2 || !reflect.DeepEqual(nets[1], red) {
		t.Fatalf("list -o json: %v %+v", err, nets)
	}
	check(t, f.vnetctl(t, nil, "network", "get", "green"), ExitNotFound, "", "Error: not found: network \"green\" (HTTP 404)\n")
	check(t, f.vnetctl(t, nil, "network", "create", "bad", "--subnet", "10.30.0.1/24"), ExitError, "", "Error: invalid: subnet")

	check(t, f.vnetctl(t, nil, "network", "rm", "blue", "green"), ExitNotFound, "network blue deleted\n", `not found: network "green"`)
	check(t, f.vnetctl(t, nil, "network", "delete", "green", "red", "--ignore-not-found", "-o", "name"), 0, "network/red\n", "")
}

// TestPortCreateDefaultRoute: --default-route asks for the take-over,
// --default-route=false for no default route, and without it the request
// leaves default_route out (docs/API.md, "Default route").
func TestPortCreateDefaultRoute(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24"), 0, "*", "")
	for name, c := range map[string]struct {
		flags []string
		want  string
	}{
		"usual": {nil, "<nil>"}, "taker": {[]string{"--default-route"}, "true"}, "second": {[]string{"--default-route=false"}, "false"},
	} {
		r := f.vnetctl(t, nil, append([]string{"port", "create", name, "--network", "blue", "--netns", name, "-o", "json"}, c.flags...)...)
		var p v1.Port
		if err := json.Unmarshal([]byte(r.out), &p); err != nil {
			t.Fatalf("port create %s %v: %v %s", name, c.flags, err, r.out)
		}
		got := "<nil>"
		if p.DefaultRoute != nil {
			got = fmt.Sprint(*p.DefaultRoute)
		}
		if got != c.want {
			t.Errorf("port create %v: default_route %s, want %s", c.flags, got, c.want)
		}
	}
}

func TestPortCommands(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "web1", "--network", "blue", "--netns", "web1"), 0,
		"port web1 created (10.10.0.2/24 "+model.PortMAC("web1")+" on blue)\n", "")
	check(t, f.vnetctl(t, nil, "port", "create", "vm1", "--network", "blue", "--type", "tap", "--ifname", "tap-vm1", "--mac", "02:00:00:00:00:01"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "x", "--network", "nope", "--netns", "web1"), ExitNotFound, "", `Error: not found: network "nope" (HTTP 404)`)
	check(t, f.vnetctl(t, nil, "port", "create", "down1", "--network", "blue", "--netns", "down1"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "list"), 0, ""+
		"NAME    NETWORK   TYPE   IP             MAC                 NETNS   IFNAME    HOST-IF          OFPORT   STATUS\n"+
		"down1   blue      veth   10.10.0.4/24   "+model.PortMAC("down1")+"   down1   eth0      "+model.HostIfname("down1")+"   3        down:netns_gone\n"+
		"vm1     blue      tap    10.10.0.3/24   02:00:00:00:00:01   -       tap-vm1   tap-vm1          2        forwarding\n"+
		"web1    blue      veth   10.10.0.2/24   "+model.PortMAC("web1")+"   web1    eth0      "+model.HostIfname("web1")+"   1        forwarding\n", "")
	r := f.vnetctl(t, nil, "port", "ls", "--network", "blue", "-o", "json")
	var ports []v1.Port
	if err := json.Unmarshal([]byte(r.out), &ports); err != nil || len(ports) != 3 || ports[2].IP != "10.10.0.2/24" || ports[2].Gateway != "10.10.0.1" || ports[0].StatusDetail == "" {
		t.Fatalf("port list -o json: %v %+v", err, ports)
	}
	check(t, f.vnetctl(t, nil, "port", "list", "--network", "nope"), ExitNotFound, "", `network "nope"`)
	r = f.vnetctl(t, nil, "port", "get", "web1", "-o", "json")
	var web1 v1.Port
	if err := json.Unmarshal([]byte(r.out), &web1); err != nil || !reflect.DeepEqual(web1, ports[2]) {
		t.Fatalf("port get -o json: %v %+v", err, web1)
	}
	check(t, f.vnetctl(t, nil, "port", "delete", "web1", "vm1"), 0, "port web1 deleted\nport vm1 deleted\n", "")
}

func TestRouterCommands(t *testing.T) {
	f := newFakeDaemon(t)
	for _, n := range []string{"blue", "red", "green"} {
		f.networks[n] = model.Network{Name: n}
	}
	check(t, f.vnetctl(t, nil, "router", "create", "r1", "--network", "blue", "--network", "red"), 0, "router r1 created\n", "")
	check(t, f.vnetctl(t, nil, "router", "create", "r1", "--networks", "red,blue"), 0, "router r1 unchanged\n", "")
	check(t, f.vnetctl(t, nil, "router", "create", "r1", "--network", "green", "--networks", "blue"), 0,
		"router r1 replaced (networks blue,green, were blue,red)\n", "")
	check(t, f.vnetctl(t, nil, "router", "list"), 0, "NAME   NETWORKS     ID\nr1     blue,green   1\n", "")
	check(t, f.vnetctl(t, nil, "router", "create", "r2"), ExitUsage, "", "name the networks to join")
	check(t, f.vnetctl(t, nil, "router", "create", "r2", "--network", "blue"), ExitError, "", "Error: invalid: a router joins 2 to 64 networks, not 1 (HTTP 400)")
	check(t, f.vnetctl(t, nil, "router", "rm", "r1"), 0, "router r1 deleted\n", "")
}

func TestInfo(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "info"), 0, ""+
		"Server:              "+f.srv.URL+"\n"+
		"Version:             v1.2.3\n"+
		"Backend:             ovs\n"+
		"Bridge:              br-vnet\n"+
		"Datapath type:       netdev\n"+
		"OpenFlow connected:  yes\n"+
		"Ready:               yes\n", "")
	f.notReady = "the datapath is not connected"
	check(t, f.vnetctl(t, nil, "info"), 0, "*", "")
	if r := f.vnetctl(t, nil, "info"); !strings.Contains(r.out, "Ready:               no: the datapath is not connected\n") {
		t.Fatalf("info while not ready:\n%s", r.out)
	}
	var info v1.Info
	if r := f.vnetctl(t, nil, "info", "-o", "json"); json.Unmarshal([]byte(r.out), &info) != nil || info.Bridge != "br-vnet" || !info.OpenFlowConnected {
		t.Fatalf("info -o json: %s", r.out)
	}
	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24"), ExitUnavailable, "", "Error: backend not ready: the datapath is not connected (HTTP 503)")
}

func TestUsageErrors(t *testing.T) {
	f := newFakeDaemon(t)
	for _, args := range [][]string{
		{"network", "create", "blue", "--subnet", "10.10.0.0/24", "--bogus"},
		{"network", "create", "blue"},    // --subnet is required
		{"network", "create"},            // NAME is
		{"network", "get", "a", "b"},     // one name
		{"network", "frobnicate"},        // unknown subcommand
		{"frobnicate"},                   // unknown command
		{"network", "list", "-o", "dot"}, // a format for topology only
		{"topology", "-o", "name"},
		{"port", "create", "a"}, // --network is required
		{"--timeout", "0s", "info"},
		{"--token", "a", "--token-file", "/dev/null", "info"},
	} {
		r := f.vnetctl(t, nil, args...)
		if r.code != ExitUsage || !strings.HasPrefix(r.errOut, "Error: ") || !strings.Contains(r.errOut, "\nUsage:\n") || r.out != "" {
			t.Errorf("vnetctl %s: exit %d, want %d with the error and usage on stderr only\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, ExitUsage, r.out, r.errOut)
		}
	}
	// A group without a subcommand shows its help, a success.
	if r := f.vnetctl(t, nil, "network"); r.code != 0 || !strings.Contains(r.out, "Available Commands:") {
		t.Errorf("vnetctl network: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
	// A daemon's refusal shows no usage.
	if r := f.vnetctl(t, nil, "network", "get", "nope"); strings.Contains(r.errOut, "Usage:") {
		t.Errorf("usage printed for a 404:\n%s", r.errOut)
	}
}

func TestTransportErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	check(t, (*fakeDaemon)(nil).vnetctl(t, map[string]string{EnvServer: "unix:" + sock}, "network", "list"), ExitUnavailable, "",
		"Error: cannot reach ovs-vnet at unix:"+sock+": dial unix "+sock+": connect: no such file or directory")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	check(t, (*fakeDaemon)(nil).vnetctl(t, nil, "--server", closed.URL, "info"), ExitUnavailable, "", "connection refused")

	// A daemon that never answers: --timeout ends the wait.
	stuck := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer stuck.Close()
	check(t, (*fakeDaemon)(nil).vnetctl(t, nil, "--server", stuck.URL, "--timeout", "200ms", "port", "list"), ExitUnavailable, "",
		"Error: ovs-vnet at "+stuck.URL+" did not answer within 200ms (--timeout)\n")
	check(t, (*fakeDaemon)(nil).vnetctl(t, nil, "--server", "ftp://x", "info"), ExitUsage, "", "want http://HOST:PORT")
}

func TestToken(t *testing.T) {
	f := newFakeDaemon(t)
	f.token = "s3cret"
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check(t, f.vnetctl(t, nil, "network", "list"), ExitUnauthorized, "", "Error: unauthorized: missing or wrong bearer token (HTTP 401)\n")
	check(t, f.vnetctl(t, map[string]string{EnvToken: "wrong"}, "network", "list"), ExitUnauthorized, "", "(HTTP 401)")
	for _, c := range []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"--token", "s3cret"}},
		{nil, []string{"--token-file", file}},
		{map[string]string{EnvToken: "s3cret"}, nil},
		{map[string]string{EnvTokenFile: file}, nil},
		{map[string]string{EnvToken: "wrong"}, []string{"--token-file", file}}, // a flag wins over the environment
	} {
		check(t, f.vnetctl(t, c.env, append(c.args, "network", "list")...), 0, "", "No networks found.")
	}
	check(t, f.vnetctl(t, nil, "--token-file", filepath.Join(t.TempDir(), "none"), "info"), ExitError, "", "Error: read token: open ")
}

func TestCompletion(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "network", "create", "red", "--subnet", "10.20.0.0/24"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "web1", "--network", "blue", "--netns", "x"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "web2", "--network", "red", "--netns", "y"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "router", "create", "r1", "--networks", "blue,red"), 0, "*", "")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"port", "get", ""}, "web1\nweb2\n:4\n"},
		{[]string{"port", "get", "web1", ""}, ":4\n"}, // one name only
		{[]string{"port", "rm", "web1", ""}, "web2\n:4\n"},
		{[]string{"network", "get", ""}, "blue\nred\n:4\n"},
		{[]string{"router", "delete", ""}, "r1\n:4\n"},
		{[]string{"port", "create", "web3", "--network", ""}, "blue\nred\n:4\n"},
		{[]string{"port", "list", "--network", ""}, "blue\nred\n:4\n"},
		{[]string{"router", "create", "r2", "--network", "blue", "--network", ""}, "red\n:4\n"},
		{[]string{"router", "create", "r2", "--networks", "red,"}, "red,blue\n:4\n"},
		{[]string{"port", "create", "web3", "--type", ""}, "veth\ntap\n:4\n"},
	} {
		if r := f.vnetctl(t, nil, append([]string{"__complete"}, c.args...)...); r.code != 0 || r.out != c.want {
			t.Errorf("__complete %q: exit %d\n%s\nwant\n%s\nstderr: %s", c.args, r.code, r.out, c.want, r.errOut)
		}
	}
	// An unreachable daemon: no names, an error directive, and why on stderr.
	r := (*fakeDaemon)(nil).vnetctl(t, map[string]string{EnvServer: "unix:/nonexistent.sock"}, "__complete", "port", "get", "")
	if r.out != ":1\n" || !strings.Contains(r.errOut, "cannot reach ovs-vnet") {
		t.Errorf("completion without a daemon: %q %q", r.out, r.errOut)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if r := f.vnetctl(t, nil, "completion", shell); r.code != 0 || !strings.Contains(r.out, "vnetctl") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, r.code, len(r.out))
		}
	}
}

func TestTopologyCommand(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "topology"), 0, "no networks\n", "")
	check(t, f.vnetctl(t, nil, "topology", "-o", "json"), 0, "{\n  \"networks\": [],\n  \"routers\": [],\n  \"ports\": [],\n  \"floating_ips\": []\n}\n", "")
	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "web1", "--network", "blue", "--netns", "web1"), 0, "*", "")
	r := f.vnetctl(t, nil, "topology", "-o", "dot")
	if r.code != 0 || !strings.Contains(r.out, `"port:web1" [label=<<B>web1</B>`) || !strings.Contains(r.out, `"net:blue" -- "port:web1"`) {
		t.Fatalf("topology -o dot: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
	var topo Topology
	if r := f.vnetctl(t, nil, "topo", "-o", "json"); json.Unmarshal([]byte(r.out), &topo) != nil || len(topo.Networks) != 1 || len(topo.Ports) != 1 || topo.Routers == nil {
		t.Fatalf("topology -o json: %s", r.out)
	}
	check(t, f.vnetctl(t, nil, "topology", "-o", "table"), 0, "network blue (10.10.0.0/24, gateway 10.10.0.1, mtu 1500)\n"+
		"└── web1  10.10.0.2/24  "+model.PortMAC("web1")+"  netns web1, eth0\n", "")
}

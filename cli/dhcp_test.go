package cli

import (
	"encoding/json"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// TestNetworkDHCPCommands: create takes the DHCP fields, get shows them,
// and set changes them in place through a PUT of the whole spec, leaving
// what it was not told alone (docs/CLI.md, "network").
func TestNetworkDHCPCommands(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "network", "create", "lab", "--subnet", "10.81.0.0/24", "--mtu", "1400",
		"--dns", "10.81.0.53,9.9.9.9", "--domain", "Lab.Example"), 0, "network lab created\n", "")
	check(t, f.vnetctl(t, nil, "network", "get", "lab"), 0, ""+
		"NAME   SUBNET         GATEWAY     MTU    MASQ   DHCP   ID\n"+
		"lab    10.81.0.0/24   10.81.0.1   1400   no     yes    1\n"+
		"dhcp: yes\ndns: 10.81.0.53, 9.9.9.9\ndomain: lab.example\n", "")
	// The same spec is unchanged; another DNS list changes it in place.
	check(t, f.vnetctl(t, nil, "network", "create", "lab", "--subnet", "10.81.0.0/24", "--mtu", "1400",
		"--dns", "10.81.0.53", "--dns", "9.9.9.9", "--domain", "lab.example"), 0, "network lab unchanged\n", "")
	check(t, f.vnetctl(t, nil, "network", "create", "lab", "--subnet", "10.81.0.0/24", "--mtu", "1400",
		"--dns", "9.9.9.9"), 0, "network lab changed\n", "")
	check(t, f.vnetctl(t, nil, "network", "create", "lab", "--subnet", "10.82.0.0/24"), ExitConflict, "", "conflict")

	for _, c := range []struct {
		name string
		args []string
		out  string
		want v1.Network
	}{
		{"dns", []string{"--dns", "10.81.0.53", "--dns", "1.1.1.1"}, "network lab changed\n",
			v1.Network{DHCP: true, DNS: []string{"10.81.0.53", "1.1.1.1"}}},
		{"same", []string{"--dns", "10.81.0.53,1.1.1.1"}, "network lab unchanged\n",
			v1.Network{DHCP: true, DNS: []string{"10.81.0.53", "1.1.1.1"}}},
		{"domain kept, dhcp off", []string{"--domain", "lab.example", "--dhcp=false"}, "network lab changed\n",
			v1.Network{DNS: []string{"10.81.0.53", "1.1.1.1"}, Domain: "lab.example"}},
		{"nothing given", nil, "network lab unchanged\n",
			v1.Network{DNS: []string{"10.81.0.53", "1.1.1.1"}, Domain: "lab.example"}},
		{"cleared, on again", []string{"--no-dns", "--no-domain", "--dhcp"}, "network lab changed\n",
			v1.Network{DHCP: true}},
	} {
		check(t, f.vnetctl(t, nil, append([]string{"network", "set", "lab"}, c.args...)...), 0, c.out, "")
		var n v1.Network
		r := f.vnetctl(t, nil, "network", "get", "lab", "-o", "json")
		if err := json.Unmarshal([]byte(r.out), &n); err != nil {
			t.Fatalf("%s: get -o json: %v %s", c.name, err, r.out)
		}
		if n.DHCP != c.want.DHCP || n.Domain != c.want.Domain || len(n.DNS) != len(c.want.DNS) ||
			n.MTU != 1400 || n.Subnet.String() != "10.81.0.0/24" {
			t.Fatalf("%s: network is %+v, want dhcp %v dns %v domain %q, mtu and subnet kept", c.name, n, c.want.DHCP, c.want.DNS, c.want.Domain)
		}
		for i := range n.DNS {
			if n.DNS[i] != c.want.DNS[i] {
				t.Fatalf("%s: dns %v, want %v", c.name, n.DNS, c.want.DNS)
			}
		}
	}
	check(t, f.vnetctl(t, nil, "network", "create", "quiet", "--subnet", "10.83.0.0/24", "--dhcp=false"), 0, "network quiet created\n", "")
	check(t, f.vnetctl(t, nil, "network", "list"), 0, ""+
		"NAME    SUBNET         GATEWAY     MTU    MASQ   DHCP   ID\n"+
		"lab     10.81.0.0/24   10.81.0.1   1400   no     yes    1\n"+
		"quiet   10.83.0.0/24   10.83.0.1   1500   no     no     2\n", "")
	check(t, f.vnetctl(t, nil, "network", "set", "lab", "--dns", "9.9.9.9", "--no-dns"), ExitUsage, "", "none of the others can be")
	check(t, f.vnetctl(t, nil, "network", "set", "lab", "--dns", "224.0.0.1"), ExitError, "", "Error: invalid: dns[0]: 224.0.0.1 is not a unicast address")
	check(t, f.vnetctl(t, nil, "network", "set", "nope", "--dhcp=false"), ExitNotFound, "", `not found: network "nope"`)
}

// TestPortConfigureCommands: --configure=false on create, get shows it,
// set-configure flips it in place (docs/CLI.md, "port").
func TestPortConfigureCommands(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "dh1", "--network", "blue", "--netns", "dh1", "--configure=false"), 0, "*", "")
	r := f.vnetctl(t, nil, "port", "get", "dh1")
	check(t, r, 0, "*", "")
	if want := "configure: false\n"; len(r.out) < len(want) || r.out[len(r.out)-len(want):] != want {
		t.Fatalf("port get ends %q, want %q", r.out, want)
	}
	check(t, f.vnetctl(t, nil, "port", "create", "dh1", "--network", "blue", "--netns", "dh1", "--configure=false"), 0,
		"port dh1 unchanged (10.10.0.2/24 "+f.ports["dh1"].MAC+" on blue)\n", "")
	check(t, f.vnetctl(t, nil, "port", "set-configure", "dh1", "true"), 0, "port dh1 configure changed (configure true)\n", "")
	check(t, f.vnetctl(t, nil, "port", "set-configure", "dh1", "true"), 0, "port dh1 unchanged (configure true)\n", "")
	r = f.vnetctl(t, nil, "port", "get", "dh1", "-o", "json")
	var p v1.Port
	if err := json.Unmarshal([]byte(r.out), &p); err != nil || p.Configure != nil {
		t.Fatalf("port get -o json after set-configure true: %v, configure %v: %s", err, p.Configure, r.out)
	}
	check(t, f.vnetctl(t, nil, "port", "create", "dh1", "--network", "blue", "--netns", "dh1", "--configure=false"), 0,
		"port dh1 configure changed (configure false)\n", "")
	check(t, f.vnetctl(t, nil, "port", "set-configure", "dh1", "maybe"), ExitUsage, "", `configure "maybe": true or false`)
	check(t, f.vnetctl(t, nil, "port", "set-configure", "nope", "false"), ExitNotFound, "", `not found: port "nope"`)
}

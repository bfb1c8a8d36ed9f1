package model

import (
	"net/netip"
	"slices"
	"testing"
)

var (
	natWeb = Port{Name: "web1", Network: "blue", IP: netip.MustParseAddr("10.61.0.5")}
	natDB  = Port{Name: "db1", Network: "red", IP: netip.MustParseAddr("10.62.0.7")}
	hostIP = netip.MustParseAddr("198.51.100.1")
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestResolveNAT(t *testing.T) {
	ports := map[string]Port{"web1": natWeb, "db1": natDB}
	fips := []FloatingIP{
		{Name: "pub2", Address: addr("203.0.113.50"), Port: "db1"},   // the address pub has
		{Name: "pub", Address: addr("203.0.113.50"), Port: "web1"},   // sorted before pub2
		{Name: "pub3", Address: addr("203.0.113.51"), Port: "web1"},  // web1's second
		{Name: "own", Address: hostIP, Port: "db1"},                  // the host's address
		{Name: "far", Address: addr("203.0.113.60"), Port: "other1"}, // another host's port
	}
	fwds := []PortForward{
		{Name: "web", Proto: ProtoTCP, HostPort: 8080, TargetPort: 80, Port: "web1"},
		{Name: "web2", Proto: ProtoTCP, HostIP: hostIP, HostPort: 8080, TargetPort: 80, Port: "db1"}, // overlaps web
		{Name: "dns", Proto: ProtoUDP, HostIP: addr("192.0.2.9"), HostPort: 53, TargetPort: 5353, Port: "db1"},
		{Name: "onfip", Proto: ProtoTCP, HostIP: addr("203.0.113.50"), HostPort: 22, TargetPort: 22, Port: "db1"},
		{Name: "away", Proto: ProtoTCP, HostPort: 9000, TargetPort: 9000, Port: "other1"},
		{Name: "third", Proto: ProtoUDP, HostIP: addr("8.8.8.8"), HostPort: 53, TargetPort: 53, Port: "db1"}, // not the host's
	}
	n, left := ResolveNAT(fips, fwds, ports, []netip.Addr{hostIP, addr("192.0.2.9")})
	wantN := NAT{
		Floating: []FloatingRule{{Name: "pub", Address: addr("203.0.113.50"), Target: Target{Port: "web1", Network: "blue", IP: natWeb.IP}}},
		Forwards: []ForwardRule{
			{Name: "dns", Proto: ProtoUDP, HostIP: addr("192.0.2.9"), HostPort: 53, TargetPort: 5353, Target: Target{Port: "db1", Network: "red", IP: natDB.IP}},
			{Name: "web", Proto: ProtoTCP, HostPort: 8080, TargetPort: 80, Target: Target{Port: "web1", Network: "blue", IP: natWeb.IP}},
		},
	}
	if !n.Equal(wantN) {
		t.Errorf("NAT\n got %+v\nwant %+v", n, wantN)
	}
	var names []string
	for _, l := range left {
		names = append(names, l.Kind+" "+l.Name+": "+l.Reason)
	}
	wantLeft := []string{
		"floating-ip own: the address is the host's own",
		"floating-ip pub2: the address is floating IP pub's",
		"floating-ip pub3: port web1 has floating IP pub",
		"port-forward onfip: host_ip is floating IP pub's address",
		"port-forward third: host_ip is not the host's",
		"port-forward web2: host port tcp/198.51.100.1:8080 is forwarded by web",
	}
	if !slices.Equal(names, wantLeft) {
		t.Errorf("left out\n got %q\nwant %q", names, wantLeft)
	}
	if empty, left := ResolveNAT(fips, fwds, nil, nil); !empty.Empty() || left != nil {
		t.Errorf("no local port: %+v, %v", empty, left)
	}
}

func TestTranslate(t *testing.T) {
	n, _ := ResolveNAT(
		[]FloatingIP{{Name: "pub", Address: addr("203.0.113.50"), Port: "web1"}},
		[]PortForward{
			{Name: "web", Proto: ProtoTCP, HostPort: 8080, TargetPort: 80, Port: "web1"},
			{Name: "dns", Proto: ProtoUDP, HostIP: addr("192.0.2.9"), HostPort: 53, TargetPort: 5353, Port: "db1"},
		},
		map[string]Port{"web1": natWeb, "db1": natDB}, []netip.Addr{addr("192.0.2.9")})
	// The gateway 10.61.0.1 is the host's, as on Linux: in a subnet, not forwarded.
	local := HostAddress([]netip.Addr{hostIP, addr("192.0.2.9"), addr("127.0.0.1"), addr("10.61.0.1")},
		[]Network{{Name: "blue", Subnet: netip.MustParsePrefix("10.61.0.0/24")}})
	for _, c := range []struct {
		dst   string
		proto uint8
		dport uint16
		want  string // "" for none, else name and destination
	}{
		{"203.0.113.50", ProtoICMP, 0, "pub 10.61.0.5:0"},
		{"203.0.113.50", ProtoTCP, 443, "pub 10.61.0.5:443"},
		{"198.51.100.1", ProtoTCP, 8080, "web 10.61.0.5:80"},
		{"192.0.2.9", ProtoTCP, 8080, "web 10.61.0.5:80"}, // every local address
		{"192.0.2.9", ProtoUDP, 53, "dns 10.62.0.7:5353"},
		{"198.51.100.1", ProtoUDP, 53, ""}, // dns is on 192.0.2.9 only
		{"198.51.100.1", ProtoUDP, 8080, ""},
		{"198.51.100.1", ProtoICMP, 0, ""},
		{"127.0.0.1", ProtoTCP, 8080, ""}, // loopback is never forwarded
		{"198.51.100.9", ProtoTCP, 8080, ""},
		{"10.61.0.1", ProtoTCP, 8080, ""}, // a network's gateway
	} {
		got := ""
		if tr, ok := n.Translate(addr(c.dst), c.proto, c.dport, local); ok {
			got = tr.Name + " " + tr.To.String()
		}
		if got != c.want {
			t.Errorf("%s proto %d port %d: %q, want %q", c.dst, c.proto, c.dport, got, c.want)
		}
	}
	// The host has lost dns's host_ip since: as the rule's fib check,
	// nothing is translated, whoever the address is now.
	lost := HostAddress([]netip.Addr{hostIP}, nil)
	if tr, ok := n.Translate(addr("192.0.2.9"), ProtoUDP, 53, lost); ok {
		t.Errorf("a host_ip the host lost translated by %s", tr.Name)
	}
}

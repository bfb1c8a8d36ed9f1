package model

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// TestNetworkDHCPSpec holds the rows of the network's DHCP fields:
// defaults, canonical forms and every refusal (all 400).
func TestNetworkDHCPSpec(t *testing.T) {
	off := false
	for _, c := range []struct {
		name         string
		spec         v1.NetworkSpec
		dhcp         bool
		dns, domain  string
		errSubstring string // "" when valid
	}{
		{name: "default on", dhcp: true},
		{name: "off", spec: v1.NetworkSpec{DHCP: &off}},
		{name: "dns in order", spec: v1.NetworkSpec{DNS: []string{"10.81.0.53", "9.9.9.9"}}, dhcp: true, dns: "10.81.0.53,9.9.9.9"},
		{name: "the gateway as dns", spec: v1.NetworkSpec{DNS: []string{"10.81.0.1"}}, dhcp: true, dns: "10.81.0.1"},
		{name: "domain lower-cased", spec: v1.NetworkSpec{Domain: "Lab.Example"}, dhcp: true, domain: "lab.example"},
		{name: "one-label domain", spec: v1.NetworkSpec{Domain: "lan"}, dhcp: true, domain: "lan"},
		{name: "longest domain", spec: v1.NetworkSpec{Domain: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 60)},
			dhcp: true, domain: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 60)},
		{name: "dns not an address", spec: v1.NetworkSpec{DNS: []string{"9.9.9.9", "x"}}, errSubstring: `dns[1]: "x" is not an IPv4 address`},
		{name: "dns v6", spec: v1.NetworkSpec{DNS: []string{"2001:db8::1"}}, errSubstring: "is not an IPv4 address"},
		{name: "dns multicast", spec: v1.NetworkSpec{DNS: []string{"224.0.0.1"}}, errSubstring: "dns[0]: 224.0.0.1 is not a unicast address"},
		{name: "dns unspecified", spec: v1.NetworkSpec{DNS: []string{"0.0.0.0"}}, errSubstring: "not a unicast address"},
		{name: "dns loopback", spec: v1.NetworkSpec{DNS: []string{"127.0.0.53"}}, errSubstring: "not a unicast address"},
		{name: "dns broadcast", spec: v1.NetworkSpec{DNS: []string{"255.255.255.255"}}, errSubstring: "not a unicast address"},
		{name: "dns twice", spec: v1.NetworkSpec{DNS: []string{"9.9.9.9", "1.1.1.1", "9.9.9.9"}}, errSubstring: "dns: 9.9.9.9 is listed twice"},
		{name: "dns too many", spec: v1.NetworkSpec{DNS: strings.Split("1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 1.1.1.9", " ")}, errSubstring: "dns: 9 servers, at most 8"},
		{name: "domain empty label", spec: v1.NetworkSpec{Domain: "a..b"}, errSubstring: `domain "a..b": labels of 1-63`},
		{name: "domain trailing dot", spec: v1.NetworkSpec{Domain: "lab.example."}, errSubstring: "no trailing dot"},
		{name: "domain hyphen first", spec: v1.NetworkSpec{Domain: "-lab.example"}, errSubstring: "labels of"},
		{name: "domain underscore", spec: v1.NetworkSpec{Domain: "my_lab"}, errSubstring: "labels of"},
		{name: "domain space", spec: v1.NetworkSpec{Domain: "lab example"}, errSubstring: "labels of"},
		{name: "domain long label", spec: v1.NetworkSpec{Domain: strings.Repeat("a", 64)}, errSubstring: "labels of"},
		{name: "domain too long", spec: v1.NetworkSpec{Domain: strings.Repeat("a.", 94) + "a"}, errSubstring: "188 characters at most"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.spec.Subnet = "10.81.0.0/24"
			n, err := NewNetwork("dh", c.spec)
			if c.errSubstring != "" {
				if err == nil || !errors.Is(err, v1.ErrInvalid) || !strings.Contains(err.Error(), c.errSubstring) {
					t.Fatalf("got %+v, %v; want a 400 saying %q", n, err, c.errSubstring)
				}
				return
			}
			if err != nil || n.DHCP != c.dhcp || string(n.DNS) != c.dns || n.Domain != c.domain {
				t.Fatalf("got %+v, %v; want dhcp %v, dns %q, domain %q", n, err, c.dhcp, c.dns, c.domain)
			}
		})
	}
}

// TestNetworkRecordWithoutDHCP: a record from before DHCP answers, one
// that says "dhcp": false does not, and a record reads back as written.
func TestNetworkRecordWithoutDHCP(t *testing.T) {
	var old Network
	if err := json.Unmarshal([]byte(`{"name":"blue","subnet":"10.1.0.0/24","gateway":"10.1.0.1","mtu":1500,"masquerade":false,"id":1}`), &old); err != nil || !old.DHCP {
		t.Fatalf("old record: %+v, %v; want DHCP on", old, err)
	}
	var off Network
	if err := json.Unmarshal([]byte(`{"name":"blue","subnet":"10.1.0.0/24","gateway":"10.1.0.1","mtu":1500,"id":1,"dhcp":false}`), &off); err != nil || off.DHCP {
		t.Fatalf("dhcp false: %+v, %v", off, err)
	}
	n, err := NewNetwork("dh", v1.NetworkSpec{Subnet: "10.81.0.0/24", DNS: []string{"10.81.0.53", "9.9.9.9"}, Domain: "lab.example"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"dh","subnet":"10.81.0.0/24","gateway":"10.81.0.1","mtu":1500,"masquerade":false,"id":0,"dhcp":true,"dns":["10.81.0.53","9.9.9.9"],"domain":"lab.example"}`
	if string(b) != want {
		t.Fatalf("record %s, want %s", b, want)
	}
	var back Network
	if err := json.Unmarshal(b, &back); err != nil || back != n {
		t.Fatalf("read back %+v, %v; want %+v", back, err, n)
	}
	if err := json.Unmarshal([]byte(`{"dns":["10.0.0.1","10.0.0.1"]}`), &back); err == nil {
		t.Fatal("a record with a dns listed twice was read")
	}
}

// TestNetworkSameImmutable: dhcp, dns and domain change in place; every
// other field does not.
func TestNetworkSameImmutable(t *testing.T) {
	base := v1.NetworkSpec{Subnet: "10.81.0.0/24", MTU: 1400, DNS: []string{"9.9.9.9"}}
	off := false
	n, _ := NewNetwork("dh", base)
	for _, c := range []struct {
		name       string
		change     func(*v1.NetworkSpec)
		same, immu bool
	}{
		{"same", func(*v1.NetworkSpec) {}, true, true},
		{"domain case", func(s *v1.NetworkSpec) { s.Domain = "LAB" }, false, true},
		{"dhcp off", func(s *v1.NetworkSpec) { s.DHCP = &off }, false, true},
		{"dns", func(s *v1.NetworkSpec) { s.DNS = []string{"1.1.1.1", "9.9.9.9"} }, false, true},
		{"no dns", func(s *v1.NetworkSpec) { s.DNS = nil }, false, true},
		{"mtu", func(s *v1.NetworkSpec) { s.MTU = 1500 }, false, false},
		{"masquerade", func(s *v1.NetworkSpec) { s.Masquerade = true }, false, false},
		{"gateway", func(s *v1.NetworkSpec) { s.Gateway = "10.81.0.254" }, false, false},
	} {
		spec := base
		c.change(&spec)
		o, err := NewNetwork("dh", spec)
		if err != nil {
			t.Fatal(err)
		}
		o.ID = 7
		if n.SameSpec(o) != c.same || n.SameImmutable(o) != c.immu {
			t.Errorf("%s: SameSpec %v, SameImmutable %v; want %v, %v", c.name, n.SameSpec(o), n.SameImmutable(o), c.same, c.immu)
		}
	}
}

// TestPortConfigure: configure false is a veth's, refused on a tap and
// with default_route true, shown only when false, and mutable.
func TestPortConfigure(t *testing.T) {
	yes, no := true, false
	veth := v1.PortSpec{Network: "blue", Netns: "web1"}
	for _, c := range []struct {
		name         string
		spec         v1.PortSpec
		noConfigure  bool
		errSubstring string
	}{
		{name: "default", spec: veth},
		{name: "true", spec: v1.PortSpec{Network: "blue", Netns: "web1", Configure: &yes}},
		{name: "false", spec: v1.PortSpec{Network: "blue", Netns: "web1", Configure: &no}, noConfigure: true},
		{name: "false without a route", spec: v1.PortSpec{Network: "blue", Netns: "web1", Configure: &no, DefaultRoute: &no}, noConfigure: true},
		{name: "false with the default route", spec: v1.PortSpec{Network: "blue", Netns: "web1", Configure: &no, DefaultRoute: &yes},
			errSubstring: "default_route true needs configure"},
		{name: "tap true", spec: v1.PortSpec{Network: "blue", Type: v1.PortTap, Configure: &yes}},
		{name: "tap false", spec: v1.PortSpec{Network: "blue", Type: v1.PortTap, Configure: &no},
			errSubstring: "configure applies to veth ports"},
	} {
		p, err := NewPort("p", c.spec)
		if c.errSubstring != "" {
			if err == nil || !errors.Is(err, v1.ErrInvalid) || !strings.Contains(err.Error(), c.errSubstring) {
				t.Errorf("%s: %+v, %v; want a 400 saying %q", c.name, p, err, c.errSubstring)
			}
			continue
		}
		if err != nil || p.NoConfigure != c.noConfigure {
			t.Errorf("%s: %+v, %v; want NoConfigure %v", c.name, p, err, c.noConfigure)
			continue
		}
		if v := p.View(Network{}).Configure; (v != nil) != c.noConfigure || (v != nil && *v) {
			t.Errorf("%s: view shows configure %v", c.name, v)
		}
	}
	p, _ := NewPort("p", veth)
	q, _ := NewPort("p", v1.PortSpec{Network: "blue", Netns: "web1", Configure: &no})
	if p.SameSpec(q) || !p.SameImmutable(q) {
		t.Errorf("configure: SameSpec %v, SameImmutable %v; want false, true", p.SameSpec(q), p.SameImmutable(q))
	}
}

// FuzzNetworkDHCP: the DHCP fields never make NewNetwork panic, and what it
// accepts is canonical: the same spec again, and its record read back,
// give the same network.
func FuzzNetworkDHCP(f *testing.F) {
	f.Add("10.81.0.53,9.9.9.9", "lab.example", true)
	f.Add("", "Lab", false)
	f.Add("224.0.0.1", "a..b", true)
	f.Fuzz(func(t *testing.T, dns, domain string, dhcp bool) {
		var list []string
		if dns != "" {
			list = strings.Split(dns, ",")
		}
		n, err := NewNetwork("dh", v1.NetworkSpec{Subnet: "10.81.0.0/24", DNS: list, Domain: domain, DHCP: &dhcp})
		if err != nil {
			if !errors.Is(err, v1.ErrInvalid) {
				t.Fatalf("error not v1.ErrInvalid: %v", err)
			}
			return
		}
		again, err := NewNetwork("dh", v1.NetworkSpec{Subnet: "10.81.0.0/24", DNS: n.DNS.Strings(), Domain: n.Domain, DHCP: &n.DHCP})
		if err != nil || again != n {
			t.Fatalf("canonical spec gives %+v, %v; want %+v", again, err, n)
		}
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		var back Network
		if err := json.Unmarshal(b, &back); err != nil || back != n {
			t.Fatalf("record %s reads back as %+v, %v", b, back, err)
		}
		if len(n.DNS.Addrs()) > v1.MaxDNS || strings.ToLower(n.Domain) != n.Domain {
			t.Fatalf("accepted %+v", n)
		}
	})
}

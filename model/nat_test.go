package model

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestNewFloatingIP(t *testing.T) {
	for _, c := range []struct {
		name, addr, port, wantErr string
	}{
		{name: "pub", addr: "198.51.100.50", port: "web1"},
		{name: "Pub", addr: "198.51.100.50", port: "web1", wantErr: "name"},
		{name: "pub", addr: "", port: "web1", wantErr: "not an IPv4 address"},
		{name: "pub", addr: "fd00::1", port: "web1", wantErr: "not an IPv4 address"},
		{name: "pub", addr: "::ffff:198.51.100.50", port: "web1", wantErr: "not an IPv4 address"},
		{name: "pub", addr: "198.51.100.0/24", port: "web1", wantErr: "not an IPv4 address"},
		{name: "pub", addr: "127.0.0.1", port: "web1", wantErr: "loopback"},
		{name: "pub", addr: "0.0.0.0", port: "web1", wantErr: "this network"},
		{name: "pub", addr: "169.254.1.1", port: "web1", wantErr: "link-local"},
		{name: "pub", addr: "239.1.1.1", port: "web1", wantErr: "multicast"},
		{name: "pub", addr: "255.255.255.255", port: "web1", wantErr: "reserved"},
		{name: "pub", addr: "198.51.100.50", port: "", wantErr: "port is required"},
		{name: "pub", addr: "198.51.100.50", port: "Web", wantErr: "port: invalid"},
	} {
		f, err := NewFloatingIP(c.name, v1.FloatingIPSpec{Address: c.addr, Port: c.port})
		if c.wantErr != "" {
			if !errors.Is(err, v1.ErrInvalid) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q %q %q: err %v, want v1.ErrInvalid with %q", c.name, c.addr, c.port, err, c.wantErr)
			}
			continue
		}
		want := FloatingIP{Name: c.name, Address: netip.MustParseAddr(c.addr), Port: c.port}
		if err != nil || f != want {
			t.Errorf("%q %q %q: %+v, %v; want %+v", c.name, c.addr, c.port, f, err, want)
		}
	}
}

func TestNewPortForward(t *testing.T) {
	web := func(f PortForward) PortForward { f.Name, f.Port = "web", "web1"; return f }
	for _, c := range []struct {
		spec    v1.PortForwardSpec
		want    PortForward
		wantErr string
	}{
		{spec: v1.PortForwardSpec{HostPort: 8080}, want: web(PortForward{Proto: ProtoTCP, HostPort: 8080, TargetPort: 8080})},
		{spec: v1.PortForwardSpec{Protocol: "udp", HostPort: 53, TargetPort: 5353, HostIP: "192.0.2.9"},
			want: web(PortForward{Proto: ProtoUDP, HostPort: 53, TargetPort: 5353, HostIP: netip.MustParseAddr("192.0.2.9")})},
		{spec: v1.PortForwardSpec{Protocol: "tcp", HostPort: 65535, TargetPort: 1}, want: web(PortForward{Proto: ProtoTCP, HostPort: 65535, TargetPort: 1})},
		{spec: v1.PortForwardSpec{Protocol: "icmp", HostPort: 1}, wantErr: "protocol must be tcp or udp"},
		{spec: v1.PortForwardSpec{Protocol: "TCP", HostPort: 1}, wantErr: "protocol must be tcp or udp"},
		{spec: v1.PortForwardSpec{}, wantErr: "host_port 0"},
		{spec: v1.PortForwardSpec{HostPort: 65536}, wantErr: "host_port 65536"},
		{spec: v1.PortForwardSpec{HostPort: -1}, wantErr: "host_port -1"},
		{spec: v1.PortForwardSpec{HostPort: 80, TargetPort: 70000}, wantErr: "target_port 70000"},
		{spec: v1.PortForwardSpec{HostPort: 80, TargetPort: -5}, wantErr: "target_port -5"},
		{spec: v1.PortForwardSpec{HostPort: 80, HostIP: "127.0.0.1"}, wantErr: "host_ip 127.0.0.1 lies in 127.0.0.0/8"},
		{spec: v1.PortForwardSpec{HostPort: 80, HostIP: "0.0.0.0"}, wantErr: "host_ip 0.0.0.0"},
		{spec: v1.PortForwardSpec{HostPort: 80, HostIP: "::1"}, wantErr: "host_ip \"::1\" is not an IPv4 address"},
		{spec: v1.PortForwardSpec{Protocol: "udp", HostPort: 4789}, wantErr: "host_port udp/4789 is VXLAN's"},
		{spec: v1.PortForwardSpec{Protocol: "udp", HostPort: 6081, HostIP: "192.0.2.9"}, wantErr: "host_port udp/6081 is Geneve's"},
		{spec: v1.PortForwardSpec{HostPort: 4789}, want: web(PortForward{Proto: ProtoTCP, HostPort: 4789, TargetPort: 4789})},
	} {
		c.spec.Port = "web1"
		f, err := NewPortForward("web", c.spec)
		if c.wantErr != "" {
			if !errors.Is(err, v1.ErrInvalid) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%+v: err %v, want v1.ErrInvalid with %q", c.spec, err, c.wantErr)
			}
			continue
		}
		if err != nil || f != c.want {
			t.Errorf("%+v: %+v, %v; want %+v", c.spec, f, err, c.want)
		}
	}
	if _, err := NewPortForward("web", v1.PortForwardSpec{HostPort: 80}); err == nil || !strings.Contains(err.Error(), "port is required") {
		t.Errorf("no port: %v", err)
	}
}

func TestPortForwardOverlaps(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	f := func(proto uint8, ip netip.Addr, port uint16) PortForward {
		return PortForward{Proto: proto, HostIP: ip, HostPort: port}
	}
	for _, c := range []struct {
		f, g PortForward
		want bool
	}{
		{f(ProtoTCP, netip.Addr{}, 80), f(ProtoTCP, netip.Addr{}, 80), true},
		{f(ProtoTCP, netip.Addr{}, 80), f(ProtoTCP, a, 80), true},
		{f(ProtoTCP, a, 80), f(ProtoTCP, a, 80), true},
		{f(ProtoTCP, a, 80), f(ProtoTCP, b, 80), false},
		{f(ProtoTCP, netip.Addr{}, 80), f(ProtoUDP, netip.Addr{}, 80), false},
		{f(ProtoTCP, netip.Addr{}, 80), f(ProtoTCP, netip.Addr{}, 81), false},
	} {
		if got, back := c.f.Overlaps(c.g), c.g.Overlaps(c.f); got != c.want || back != c.want {
			t.Errorf("%v overlaps %v: %v, %v; want %v", c.f, c.g, got, back, c.want)
		}
	}
}

func TestNATViews(t *testing.T) {
	p := Port{Name: "web1", Network: "blue", IP: netip.MustParseAddr("10.61.0.5"), Host: "h1"}
	fip := FloatingIP{Name: "pub", Address: netip.MustParseAddr("198.51.100.50"), Port: "web1"}
	if v := fip.View(p); v.IP != p.IP || v.Network != "blue" || v.Host != "h1" || v.Address != fip.Address {
		t.Errorf("floating view %+v", v)
	}
	fwd := PortForward{Name: "dns", Proto: ProtoUDP, HostPort: 53, TargetPort: 5353, Port: "web1"}
	v := fwd.View(p)
	if v.Protocol != "udp" || v.HostPort != 53 || v.TargetPort != 5353 || v.HostIP.IsValid() || v.IP != p.IP {
		t.Errorf("forward view %+v", v)
	}
	again, err := NewPortForward("dns", v1.PortForwardSpec{Protocol: v.Protocol, HostPort: v.HostPort, TargetPort: v.TargetPort, Port: v.Port})
	if err != nil || again != fwd {
		t.Errorf("view %+v gives %+v, %v", v, again, err)
	}
	if s := fwd.String(); s != "udp/53" {
		t.Errorf("String %q", s)
	}
	fwd.HostIP = netip.MustParseAddr("192.0.2.9")
	if s := fwd.String(); s != "udp/192.0.2.9:53" {
		t.Errorf("String %q", s)
	}
}

// FuzzFloatingIPSpec: a floating IP is refused with v1.ErrInvalid or has
// an address no network could hold and a valid port name.
func FuzzFloatingIPSpec(f *testing.F) {
	f.Add("pub", "198.51.100.50", "web1")
	f.Add("x", "127.0.0.1", "y")
	f.Add("x", "::ffff:1.2.3.4", "y")
	f.Fuzz(func(t *testing.T, name, addr, port string) {
		fip, err := NewFloatingIP(name, v1.FloatingIPSpec{Address: addr, Port: port})
		if err != nil {
			if !errors.Is(err, v1.ErrInvalid) {
				t.Fatalf("error not v1.ErrInvalid: %v", err)
			}
			return
		}
		if !fip.Address.Is4() || v1.ValidateName(fip.Port) != nil || v1.ValidateName(fip.Name) != nil {
			t.Fatalf("accepted %+v", fip)
		}
		for _, sp := range specialPurpose {
			if sp.prefix.Contains(fip.Address) {
				t.Fatalf("accepted %s in %s", fip.Address, sp.prefix)
			}
		}
	})
}

// FuzzPortForwardSpec: a forward is refused with v1.ErrInvalid or
// accepted with real ports, and its view gives it again.
func FuzzPortForwardSpec(f *testing.F) {
	f.Add("web", "tcp", 8080, "web1", 80, "")
	f.Add("dns", "udp", 53, "d", 0, "192.0.2.9")
	f.Add("x", "", 0, "y", -1, "127.0.0.1")
	f.Fuzz(func(t *testing.T, name, proto string, hostPort int, port string, target int, hostIP string) {
		fwd, err := NewPortForward(name, v1.PortForwardSpec{Protocol: proto, HostPort: hostPort, Port: port, TargetPort: target, HostIP: hostIP})
		if err != nil {
			if !errors.Is(err, v1.ErrInvalid) {
				t.Fatalf("error not v1.ErrInvalid: %v", err)
			}
			return
		}
		if fwd.HostPort == 0 || fwd.TargetPort == 0 || fwd.Proto != ProtoTCP && fwd.Proto != ProtoUDP ||
			fwd.HostIP.IsValid() && !fwd.HostIP.Is4() {
			t.Fatalf("accepted %+v", fwd)
		}
		v := fwd.View(Port{})
		spec := v1.PortForwardSpec{Protocol: v.Protocol, HostPort: v.HostPort, Port: v.Port, TargetPort: v.TargetPort}
		if v.HostIP.IsValid() {
			spec.HostIP = v.HostIP.String()
		}
		if again, err := NewPortForward(name, spec); err != nil || again != fwd {
			t.Fatalf("view %+v gives %+v, %v; want %+v", v, again, err, fwd)
		}
	})
}

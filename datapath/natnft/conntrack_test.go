package natnft

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// local are the addresses of the host the flows below meet.
var local = []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("10.61.0.1")}

// flow is a conntrack entry: orig src → orig dst, reply src → reply dst.
func flow(proto uint8, src, dst, rsrc, rdst string) *netlink.ConntrackFlow {
	ap := netip.MustParseAddrPort
	tuple := func(from, to string) netlink.IPTuple {
		f, t := ap(from), ap(to)
		return netlink.IPTuple{Protocol: proto, SrcIP: net.IP(f.Addr().AsSlice()), SrcPort: f.Port(), DstIP: net.IP(t.Addr().AsSlice()), DstPort: t.Port()}
	}
	return &netlink.ConntrackFlow{FamilyType: unix.AF_INET, Forward: tuple(src, dst), Reverse: tuple(rsrc, rdst)}
}

func TestForgetMatches(t *testing.T) {
	// sample: pub 203.0.113.50 → web1 10.61.0.5; dns udp 192.0.2.9:53 →
	// 10.62.0.7:5353; web tcp 8080 → 10.61.0.5:80.
	tcp, udp := model.ProtoTCP, model.ProtoUDP
	var (
		webIn      = flow(tcp, "198.51.100.2:40000", "198.51.100.1:8080", "10.61.0.5:80", "198.51.100.2:40000")
		webHairpin = flow(tcp, "10.61.0.5:40001", "198.51.100.1:8080", "10.61.0.5:80", "198.51.100.1:40001")
		direct     = flow(tcp, "10.61.0.9:40002", "10.61.0.5:80", "10.61.0.5:80", "10.61.0.9:40002")
		pubIn      = flow(model.ProtoICMP, "198.51.100.2:0", "203.0.113.50:0", "10.61.0.5:0", "198.51.100.2:0")
		pubOut     = flow(tcp, "10.61.0.5:40003", "198.51.100.2:443", "198.51.100.2:443", "203.0.113.50:40003")
		dnsIn      = flow(udp, "198.51.100.2:40004", "192.0.2.9:53", "10.62.0.7:5353", "198.51.100.2:40004")
		udpBefore  = flow(udp, "198.51.100.2:40005", "198.51.100.1:53", "198.51.100.1:53", "198.51.100.2:40005")
		udpPorts   = flow(udp, "10.61.0.9:40006", "10.61.0.5:53", "10.61.0.5:53", "10.61.0.9:40006")
	)
	udpAny := model.ForwardRule{Name: "any", Proto: udp, HostPort: 53, TargetPort: 53, Target: web}
	for _, c := range []struct {
		what     string
		was, now model.NAT
		match    []*netlink.ConntrackFlow
		keep     []*netlink.ConntrackFlow
	}{
		{"nothing changed", sample, sample, nil, []*netlink.ConntrackFlow{webIn, webHairpin, direct, pubIn, pubOut, dnsIn, udpBefore, udpPorts}},
		{"everything removed", sample, model.NAT{}, []*netlink.ConntrackFlow{webIn, webHairpin, pubIn, pubOut, dnsIn},
			[]*netlink.ConntrackFlow{direct, udpBefore, udpPorts}},
		{"the floating IP removed", sample, model.NAT{Forwards: sample.Forwards}, []*netlink.ConntrackFlow{pubIn, pubOut},
			[]*netlink.ConntrackFlow{webIn, webHairpin, direct, dnsIn}},
		{"a forward changed", sample, model.NAT{Floating: sample.Floating, Forwards: []model.ForwardRule{sample.Forwards[0],
			{Name: "web", Proto: tcp, HostPort: 8080, TargetPort: 81, Target: web}}}, []*netlink.ConntrackFlow{webIn, webHairpin},
			[]*netlink.ConntrackFlow{direct, pubIn, dnsIn}},
		{"a UDP forward on every address added", model.NAT{}, model.NAT{Forwards: []model.ForwardRule{udpAny}}, []*netlink.ConntrackFlow{udpBefore},
			[]*netlink.ConntrackFlow{udpPorts, dnsIn, webIn}},
		{"a UDP forward on another address added", model.NAT{}, model.NAT{Forwards: sample.Forwards[:1]}, nil,
			[]*netlink.ConntrackFlow{udpBefore, udpPorts}},
	} {
		f := forgetFilter(c.was, c.now, local)
		for _, m := range c.match {
			if !f.MatchConntrackFlow(m) {
				t.Errorf("%s: keeps %s", c.what, m)
			}
		}
		for _, k := range c.keep {
			if f.MatchConntrackFlow(k) {
				t.Errorf("%s: deletes %s", c.what, k)
			}
		}
	}
}

// TestForget has the kernel's conntrack table of a namespace hold a
// forward's entry and another, and Forget delete only the first.
func TestForget(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test writes conntrack entries in a network namespace")
	ns := testbed.Netns(t, "vnt-ct-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	webIn := flow(model.ProtoTCP, "198.51.100.2:40000", "198.51.100.1:8080", "10.61.0.5:80", "198.51.100.2:40000")
	other := flow(model.ProtoTCP, "198.51.100.2:40001", "198.51.100.1:22", "198.51.100.1:22", "198.51.100.2:40001")
	err := testbed.InNetns(ns, func() error {
		for _, f := range []*netlink.ConntrackFlow{webIn, other} {
			f.TimeOut = 100
			f.ProtoInfo = &netlink.ProtoInfoTCP{State: 3} // established
			if err := netlink.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
				return err
			}
		}
		if err := Forget(ctx, sample, model.NAT{Floating: sample.Floating, Forwards: sample.Forwards[:1]}); err != nil {
			return err
		}
		left, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		if err != nil {
			return err
		}
		if len(left) != 1 || left[0].Forward.DstPort != 22 {
			t.Errorf("left %v, want the entry to port 22", left)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package ovs

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestDHCPHostBound: the daemon bounds all ports' DHCP together
// (dhcp.HostRate, dhcp.HostBurst), each port's meter bounding its own:
// sixteen ports send their meter's burst of DISCOVERs at once, more than
// the host's burst, and the responder sees no more than the host's bucket
// lets through while they arrive; the rest is refused.
func TestDHCPHostBound(t *testing.T) {
	box, cfg := startHostBox(t)
	prefix := netip.MustParsePrefix("10.97.0.0/24")
	n := model.Network{Name: "hb", Subnet: prefix, Gateway: prefix.Addr().Next(), MTU: 1500, ID: 1, DHCP: true}
	h := startAgent(t, t, "host", box.Netns)
	h.do(t, agentCmd{Op: "new", Config: cfg})
	h.do(t, agentCmd{Op: "network", Network: n})
	const ports = 16
	var attached []model.Port
	for i := range ports {
		name := fmt.Sprintf("hb%02d", i)
		p := model.Port{Name: name, Network: n.Name, Type: v1.PortVeth, Netns: testbed.Netns(t, "vnt-hb-"), Ifname: "eth0",
			IP: netip.AddrFrom4([4]byte{10, 97, 0, byte(10 + i)}), MAC: model.PortMAC(name), HostIfname: model.HostIfname(name)}
		attached = append(attached, h.do(t, agentCmd{Op: "attach", Network: n, Port: p}).Port)
	}
	h.do(t, agentCmd{Op: "prune", State: datapath.State{Networks: []model.Network{n}, Ports: attached}})
	socks := make([]*os.File, ports)
	frames := make([][]byte, ports)
	for i, p := range attached {
		socks[i], frames[i] = openPacketSocket(t, p.Netns), discoverFrame(t, p)
	}
	stats := func() datapath.DHCPStats { return h.do(t, agentCmd{Op: "dhcp-stats"}).DHCPStats }
	before := stats()
	start := time.Now()
	sent := 0
	for i := range socks {
		for range dhcp.PortBurst {
			if _, err := socks[i].Write(frames[i]); err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}
	took := time.Since(start)
	// The daemon counts a frame when it reads its packet-in, which on a
	// loaded machine may take a while; and ovs-vswitchd drops packet-ins
	// beyond its backlog for a controller that reads slowly (connmgr's
	// limit of 100 unsent), which nothing here counts. So wait until every
	// frame is accounted for or the counts stop changing (1 s), bounded
	// generously, and take the last change as when the frames had all
	// reached the daemon.
	var seen, limited, queued int
	last, lastChange := -1, time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		after := stats()
		diff := func(m func(datapath.DHCPStats) map[string]uint64, k string) int {
			return int(m(after)[k] - m(before)[k])
		}
		seen = diff(func(s datapath.DHCPStats) map[string]uint64 { return s.Requests }, dhcp.TypeDiscover)
		limited = diff(func(s datapath.DHCPStats) map[string]uint64 { return s.Refused }, dhcp.ReasonRateLimited)
		queued = diff(func(s datapath.DHCPStats) map[string]uint64 { return s.Refused }, dhcp.ReasonQueueFull)
		if n := seen + limited + queued; n != last {
			last, lastChange = n, time.Now()
		}
		if last >= sent || time.Since(lastChange) > time.Second || time.Now().After(deadline) {
			break
		}
	}
	// What the host's bucket holds and gains at most while the frames
	// arrive: its burst, and its rate until the last count changed.
	arrived := lastChange.Sub(start)
	bound := dhcp.HostBurst + int(dhcp.HostRate*arrived.Seconds())
	t.Logf("%d DISCOVERs in %v, the last counted after %v: %d seen by the responder (bound %d), %d rate limited, %d queue full, %d dropped by the switch's backlog",
		sent, took, arrived, seen, bound, limited, queued, sent-last)
	if seen < 1 || seen > bound || last > sent {
		t.Fatalf("%d DISCOVERs from %d ports at once: %d seen by the responder, bound %d; %d rate limited, %d queue full",
			sent, ports, seen, bound, limited, queued)
	}
}

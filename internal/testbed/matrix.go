package testbed

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// Matrix is the policy matrix of the security group tests: every port
// tries every service of every other port — TCP echo on each of TCP, UDP
// echo on UDPEcho, UDP to UDPClosed (which nothing serves), ping — and each
// outcome is checked against model.Policy.Allows. An echo or a ping answer
// proves the reply passed too, and a port unreachable seen by the sender of
// the closed-port probe proves related ICMP passes. The ports serve the
// services with ServeEcho.
type Matrix struct {
	TCP                []uint16
	UDPEcho, UDPClosed uint16
	// Wait bounds each probe (TCP's connect, and its echo): a denied one
	// waits it out.
	Wait time.Duration
}

// MatrixPort is a port of a matrix: its name as the policy knows it, its
// network namespace and its address.
type MatrixPort struct {
	Name, Netns string
	IP          netip.Addr
}

// Try runs one probe from namespace ns to port of to (0 for ping) and
// tells whether it passed: the echo or the ping answer came back or, at
// UDPClosed, the port unreachable did; err is what the probe met.
func (m Matrix) Try(ns string, to netip.Addr, proto uint8, port uint16) (passed bool, err error) {
	at := netip.AddrPortFrom(to, port)
	switch proto {
	case model.ProtoTCP:
		err = TCPEcho(ns, at, m.Wait, m.Wait)
	case model.ProtoUDP:
		err = UDPEcho(ns, at, m.Wait)
	default:
		err = Ping(ns, to, m.Wait)
	}
	if proto == model.ProtoUDP && port == m.UDPClosed {
		// Reached: the port unreachable came back, as related.
		return errors.Is(err, syscall.ECONNREFUSED), err
	}
	return err == nil, err
}

// Check runs every probe of every ordered pair of ports at once, reports
// each whose outcome pol's Allows disagrees with (both sides must allow),
// and returns how many probes pol allows, of how many.
func (m Matrix) Check(tb testing.TB, step string, pol model.Policy, ports []MatrixPort) (allowed, total int) {
	tb.Helper()
	type probe struct {
		from, to MatrixPort
		proto    uint8
		dport    uint16
	}
	var probes []probe
	for _, from := range ports {
		for _, to := range ports {
			if from.Name == to.Name {
				continue
			}
			for _, port := range m.TCP {
				probes = append(probes, probe{from, to, model.ProtoTCP, port})
			}
			probes = append(probes, probe{from, to, model.ProtoUDP, m.UDPEcho}, probe{from, to, model.ProtoUDP, m.UDPClosed},
				probe{from, to, model.ProtoICMP, 0})
		}
	}
	passed := make([]bool, len(probes))
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() { passed[i], errs[i] = m.Try(p.from.Netns, p.to.IP, p.proto, p.dport) })
	}
	wg.Wait()
	for i, p := range probes {
		eg, in := pol.Allows(model.Packet{SrcPort: p.from.Name, DstPort: p.to.Name, Src: p.from.IP, Dst: p.to.IP, Proto: p.proto, DPort: p.dport})
		want := eg.Allowed && in.Allowed
		if passed[i] != want {
			tb.Errorf("%s: %s → %s proto %d port %d: passed %v, want %v (egress %+v, ingress %+v): %v",
				step, p.from.Name, p.to.Name, p.proto, p.dport, passed[i], want, eg, in, errs[i])
		}
		if want {
			allowed++
		}
	}
	tb.Logf("%s: %d probes, %d of them allowed", step, len(probes), allowed)
	return allowed, len(probes)
}

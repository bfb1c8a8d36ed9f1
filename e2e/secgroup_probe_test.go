package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// The services every port of the security group tests offers: TCP echo on
// sgHTTP and sgPostgres, UDP echo on sgUDPEcho. Nothing listens on
// sgUDPClosed, which db's rules allow: the port unreachable it draws must
// come back to the sender as related. sgStream and sgDownload take the
// streams of the live-change and restart checks (db's rules allow them
// beside sgPostgres).
const (
	sgHTTP      = 80
	sgPostgres  = 5432
	sgStream    = 5433
	sgDownload  = 5434
	sgUDPEcho   = 5353
	sgUDPClosed = 5354
)

// sgProbeTimeout bounds a probe that the policy drops.
const sgProbeTimeout = 2 * time.Second

// sgPort is a port of the security group tests.
type sgPort struct {
	name, network, ns string
	ip                netip.Addr
	groups            []string
}

// spec is the port's PUT body.
func (p sgPort) spec() map[string]any {
	return map[string]any{"network": p.network, "netns": p.ns, "ifname": "eth0", "ip": p.ip.String(), "security_groups": p.groups}
}

// sgOracle is the policy the daemon should enforce, computed as the
// controller does from what the API says: every group as GET lists it
// (parsed again by model.NewSecurityGroup, with its ID), the ports' groups,
// and each group's members. Its Allows is the expected yes/no of every
// probe; for a cluster, ports holds every host's ports.
func sgOracle(t *testing.T, d *daemon, ports []sgPort) model.Policy {
	t.Helper()
	var l v1.SecurityGroupList
	d.must("GET", "/v1/security-groups", nil, 200, &l)
	pol := model.Policy{Groups: map[string]model.SecurityGroup{}, Ports: map[string]model.GroupList{}, Members: map[string][]netip.Addr{}}
	for _, v := range l.SecurityGroups {
		g, err := model.NewSecurityGroup(v.Name, v1.SecurityGroupSpec{Rules: v.Rules})
		if err != nil {
			t.Fatalf("group %s as the API shows it: %v", v.Name, err)
		}
		g.ID = v.ID
		pol.Groups[v.Name] = g
	}
	for _, p := range ports {
		if len(p.groups) == 0 {
			continue
		}
		gl, err := model.NewGroupList(p.groups)
		if err != nil {
			t.Fatal(err)
		}
		pol.Ports[p.name] = gl
		for _, g := range gl.Names() {
			pol.Members[g] = append(pol.Members[g], p.ip)
		}
	}
	for g := range pol.Members {
		slices.SortFunc(pol.Members[g], netip.Addr.Compare)
		pol.Members[g] = slices.Compact(pol.Members[g])
	}
	return pol
}

// checkSGMatrix has every port try every service of every other port —
// TCP connect and echo, UDP echo, UDP to a closed port, ping — and checks
// each outcome against pol.Allows: an echo or a ping answer proves the
// reply passed too, and a port unreachable seen by the sender of the
// closed-port probe proves related ICMP passes. The probes run at once: a
// denied one waits out its timeout.
func checkSGMatrix(t *testing.T, step string, pol model.Policy, ports []sgPort) {
	t.Helper()
	type probe struct {
		from, to sgPort
		proto    uint8
		dport    uint16
	}
	var probes []probe
	for _, from := range ports {
		for _, to := range ports {
			if from.name != to.name {
				probes = append(probes, probe{from, to, model.ProtoTCP, sgHTTP}, probe{from, to, model.ProtoTCP, sgPostgres},
					probe{from, to, model.ProtoUDP, sgUDPEcho}, probe{from, to, model.ProtoUDP, sgUDPClosed}, probe{from, to, model.ProtoICMP, 0})
			}
		}
	}
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			switch p.proto {
			case model.ProtoTCP:
				errs[i] = sgDial(p.from.ns, p.to.ip, p.dport, sgProbeTimeout)
			case model.ProtoUDP:
				errs[i] = sgUDPEchoOnce(p.from.ns, p.to.ip, p.dport)
			default:
				errs[i] = sgPing(p.from.ns, p.to.ip)
			}
		})
	}
	wg.Wait()
	allowed := 0
	for i, p := range probes {
		eg, in := pol.Allows(model.Packet{SrcPort: p.from.name, DstPort: p.to.name, Src: p.from.ip, Dst: p.to.ip, Proto: p.proto, DPort: p.dport})
		want := eg.Allowed && in.Allowed
		got := errs[i] == nil
		if p.dport == sgUDPClosed {
			got = errors.Is(errs[i], syscall.ECONNREFUSED)
		}
		if got != want {
			t.Errorf("%s: %s → %s proto %d port %d: passed %v, want %v (egress %+v, ingress %+v): %v",
				step, p.from.name, p.to.name, p.proto, p.dport, got, want, eg, in, errs[i])
		}
		if want {
			allowed++
		}
	}
	t.Logf("%s: %d probes, %d of them allowed", step, len(probes), allowed)
	if allowed == 0 || allowed == len(probes) {
		t.Errorf("%s: the matrix proves nothing: %d of %d allowed", step, allowed, len(probes))
	}
}

// sgServe runs the TCP and UDP echo services on the port's address, in its
// namespace, until the test ends.
func sgServe(t *testing.T, p sgPort) {
	t.Helper()
	for _, port := range []uint16{sgHTTP, sgPostgres} {
		ln := sgListen(t, p.ns, netip.AddrPortFrom(p.ip, port))
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_, _ = io.Copy(c, c)
				}()
			}
		}()
	}
	var pc net.PacketConn
	if err := testbed.InNetns(p.ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", netip.AddrPortFrom(p.ip, sgUDPEcho).String())
		return err
	}); err != nil {
		t.Fatalf("listen on %s:%d/udp: %v", p.name, sgUDPEcho, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

func sgListen(t *testing.T, ns string, at netip.AddrPort) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := testbed.InNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp4", at.String())
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", at, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// sgConnect opens a TCP connection from namespace ns.
func sgConnect(ns string, to netip.Addr, port uint16, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := testbed.InNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(to, port).String(), timeout)
		return err
	})
	return c, err
}

// sgDial connects from namespace ns and has one byte echoed.
func sgDial(ns string, to netip.Addr, port uint16, timeout time.Duration) error {
	c, err := sgConnect(ns, to, port, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	return sgEcho(c, sgProbeTimeout)
}

// sgUDPEchoOnce sends a datagram from namespace ns and waits for it back;
// a port unreachable shows as ECONNREFUSED.
func sgUDPEchoOnce(ns string, to netip.Addr, port uint16) error {
	var c net.Conn
	if err := testbed.InNetns(ns, func() (err error) {
		c, err = net.Dial("udp4", netip.AddrPortFrom(to, port).String())
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	return sgEcho(c, sgProbeTimeout)
}

// sgEcho sends a byte and waits, at most timeout, for it to come back.
func sgEcho(c net.Conn, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{42}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil {
		return err
	}
	if b[0] != 42 {
		return fmt.Errorf("echoed %d, sent 42", b[0])
	}
	return nil
}

func sgPing(ns string, to netip.Addr) error {
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", to.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s: %v: %s", to, err, out)
	}
	return nil
}

// sgStreamer is a TCP stream between two namespaces: one end writes as
// fast as it can, the other counts.
type sgStreamer struct {
	received atomic.Int64
}

// sgStartStream connects from namespace client to a listener on to in
// namespace server; the client writes, or with download the server does
// (the bulk then flows in the connection's reply direction).
func sgStartStream(t *testing.T, client, server string, to netip.AddrPort, download bool) *sgStreamer {
	t.Helper()
	ln := sgListen(t, server, to)
	s := &sgStreamer{}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := sgConnect(client, to.Addr(), to.Port(), sgProbeTimeout)
	if err != nil {
		t.Fatalf("stream to %s: %v", to, err)
	}
	t.Cleanup(func() { c.Close() })
	sc, ok := <-accepted
	if !ok {
		t.Fatalf("stream to %s: not accepted", to)
	}
	t.Cleanup(func() { sc.Close() })
	from, into := c, sc
	if download {
		from, into = sc, c
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := into.Read(buf)
			s.received.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	go func() {
		// About 100 Mbit/s: enough to see a stall at once, not so much
		// that the userspace datapath drops the single-packet probes the
		// tests run beside it.
		buf := make([]byte, 64<<10)
		for {
			if _, err := from.Write(buf); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return s
}

// waitFlowing waits, generously bounded, for another MiB to arrive.
func (s *sgStreamer) waitFlowing(t *testing.T, what string) {
	t.Helper()
	from := s.received.Load()
	waitFor(t, what, func() bool { return s.received.Load() > from+1<<20 })
}

// waitStalled waits, generously bounded, until no byte has arrived for
// half a second, and returns when the last byte came, measured from since.
func (s *sgStreamer) waitStalled(t *testing.T, since time.Time) time.Duration {
	t.Helper()
	const quiet, bound = 500 * time.Millisecond, 10 * time.Second
	last, lastAt := s.received.Load(), since
	for time.Since(lastAt) < quiet {
		if time.Since(since) > bound {
			t.Fatalf("the stream still flows %v after the rule was removed (%d bytes)", bound, s.received.Load())
		}
		time.Sleep(10 * time.Millisecond)
		if n := s.received.Load(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	return lastAt.Sub(since)
}

// nftMonitor runs `nft monitor` in netns and returns a function that stops
// it and returns the lines it printed about table (e.g. "ovs_vnet_sg"). It
// waits for the monitor to listen: a change it does not see would pass for
// no change.
func nftMonitor(t *testing.T, netns, table string) func() []string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", netns, "nft", "monitor")
	var out testbed.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() string {
		if !stopped {
			stopped = true
			time.Sleep(200 * time.Millisecond) // events of the change just made
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return out.String()
	}
	t.Cleanup(func() { stop() })
	// A sentinel table of our own, made and dropped, that the monitor must
	// report before it counts.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "vnt_sentinel") {
		if time.Now().After(deadline) {
			t.Fatalf("nft monitor did not start: %s", out.String())
		}
		testbed.Run(t, "ip", "netns", "exec", netns, "nft", "add table inet vnt_sentinel; delete table inet vnt_sentinel")
		time.Sleep(50 * time.Millisecond)
	}
	return func() []string {
		var keep []string
		for _, line := range strings.Split(stop(), "\n") {
			if strings.Contains(line, " "+table+" ") || strings.HasSuffix(line, " "+table) {
				keep = append(keep, line)
			}
		}
		return keep
	}
}

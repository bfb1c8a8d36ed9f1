package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// The NAT test bed (issue 21): a daemon, the outside namespace of the
// reachability test routed to the host, which routes back to it by
// default, and three ports — web in a masquerading network, db and client
// in one that does not masquerade — each answering "who" on tcp/80 and
// udp/53 with the address it saw the asker come from.

var (
	natHost    = netip.MustParseAddr(hostOutsideIP) // the host's address the outside reaches
	natOutside = netip.MustParseAddr(outsideIP)
	// Floating addresses: the outside routes 203.0.113.0/24 to the host.
	natFIPWeb = netip.MustParseAddr("203.0.113.10")
	natFIPDB  = netip.MustParseAddr("203.0.113.11")
)

const (
	natWhoPort  = 80   // the ports' who service on tcp
	natUDPPort  = 53   // and on udp
	natEchoPort = 7    // web's echo service: a connection to keep
	natOutPort  = 9000 // the outside's who service
)

// natPort is a port of the bed.
type natPort struct {
	name, network, ns string
	ip                netip.Addr
}

func (p natPort) spec(groups ...string) map[string]any {
	s := map[string]any{"network": p.network, "netns": p.ns, "ip": p.ip.String()}
	if len(groups) > 0 {
		s["security_groups"] = groups
	}
	return s
}

type natBed struct {
	d               *daemon
	box             *testbed.Sandbox
	hostNS, outNS   string
	web, db, client natPort
}

func newNATBed(t *testing.T, bc backendCase) *natBed {
	t.Helper()
	b := &natBed{hostNS: newNetns(t, "vnt-host-")}
	var args []string
	args, b.box = bc.setup(t, b.hostNS)
	b.d = startDaemon(t, b.hostNS, args...)
	b.d.must("PUT", "/v1/networks/nblue", map[string]any{"subnet": "10.81.0.0/24", "masquerade": true}, 201, nil)
	b.d.must("PUT", "/v1/networks/nred", map[string]any{"subnet": "10.82.0.0/24"}, 201, nil)
	b.outNS = newOutside(t, b.hostNS)
	testbed.Run(t, "ip", "-n", b.outNS, "route", "add", "203.0.113.0/24", "via", hostOutsideIP)
	// The host reaches a floating address only by a route (the output
	// hook runs after the route lookup): a host has a default route.
	testbed.Run(t, "ip", "-n", b.hostNS, "route", "add", "default", "via", outsideIP)
	serveWho(t, b.outNS, []uint16{natOutPort}, nil)

	b.web = natPort{"web", "nblue", newNetns(t, "vnt-web-"), netip.MustParseAddr("10.81.0.10")}
	b.db = natPort{"db", "nred", newNetns(t, "vnt-db-"), netip.MustParseAddr("10.82.0.10")}
	b.client = natPort{"client", "nred", newNetns(t, "vnt-cl-"), netip.MustParseAddr("10.82.0.20")}
	for _, p := range []natPort{b.web, b.db, b.client} {
		b.d.must("PUT", "/v1/ports/"+p.name, p.spec(), 201, nil)
		serveWho(t, p.ns, []uint16{natWhoPort}, []uint16{natUDPPort})
	}
	testbed.ServeEcho(t, b.web.ns, netip.IPv4Unspecified(), []uint16{natEchoPort}, nil)
	return b
}

// forwards and floating IPs the bed's tests put: web's http on the host's
// 8080, db's who on udp 5353 and, on the host address alone, tcp 8081.
var (
	natFwdWeb = map[string]any{"port": "web", "host_port": 8080, "target_port": natWhoPort}
	natFwdDNS = map[string]any{"port": "db", "protocol": "udp", "host_port": 5353, "target_port": natUDPPort}
	natFwdDB  = map[string]any{"port": "db", "host_port": 8081, "target_port": natWhoPort, "host_ip": hostOutsideIP}
)

func (b *natBed) putAll(t *testing.T) {
	t.Helper()
	b.d.must("PUT", "/v1/floating-ips/fipweb", map[string]string{"address": natFIPWeb.String(), "port": "web"}, 201, nil)
	b.d.must("PUT", "/v1/floating-ips/fipdb", map[string]string{"address": natFIPDB.String(), "port": "db"}, 201, nil)
	b.d.must("PUT", "/v1/port-forwards/fwdweb", natFwdWeb, 201, nil)
	b.d.must("PUT", "/v1/port-forwards/fwddns", natFwdDNS, 201, nil)
	b.d.must("PUT", "/v1/port-forwards/fwddb", natFwdDB, 201, nil)
}

// serveWho answers each TCP connection to the tcp ports, and each UDP
// datagram to the udp ports, on every address of ns, with the source
// address it came from: what the server sees.
func serveWho(t *testing.T, ns string, tcp, udp []uint16) {
	t.Helper()
	for _, port := range tcp {
		ln := testbed.Listen(t, ns, netip.AddrPortFrom(netip.IPv4Unspecified(), port))
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				_, _ = fmt.Fprintln(c, host)
				c.Close()
			}
		}()
	}
	for _, port := range udp {
		at := netip.AddrPortFrom(netip.IPv4Unspecified(), port)
		var pc net.PacketConn
		if err := testbed.InNetns(ns, func() (err error) {
			pc, err = net.ListenPacket("udp4", at.String())
			return err
		}); err != nil {
			t.Fatalf("listen on %s/udp in %s: %v", at, ns, err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 64)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				host, _, _ := net.SplitHostPort(from.String())
				_, _ = pc.WriteTo([]byte(host+"\n"), from)
			}
		}()
	}
}

// askWho asks the who service at to, from ns, over proto ("tcp" or
// "udp"), and returns the address it answered: the source it saw.
func askWho(ns, proto string, to netip.AddrPort) (string, error) {
	const wait = 3 * time.Second
	var c net.Conn
	if err := testbed.InNetns(ns, func() (err error) {
		c, err = net.DialTimeout(proto+"4", to.String(), wait)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if proto == "udp" {
		if _, err := c.Write([]byte("who\n")); err != nil {
			return "", err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// natProbe is one connection and the source its server must see ("" when
// it must fail).
type natProbe struct {
	what  string
	ns    string
	proto string
	to    netip.AddrPort
	want  string
	got   string
	err   error
}

// runNATProbes runs the probes at once and reports every mismatch in one
// table.
func runNATProbes(t *testing.T, step string, probes []natProbe) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range probes {
		wg.Add(1)
		go func(p *natProbe) {
			defer wg.Done()
			p.got, p.err = askWho(p.ns, p.proto, p.to)
		}(&probes[i])
	}
	wg.Wait()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROBE\tTO\tSERVER SAW (WANT)\t")
	bad := 0
	for _, p := range probes {
		got := p.got
		if p.err != nil {
			got = "refused: " + p.err.Error()
		}
		mark := ""
		if (p.want == "") != (p.err != nil) || p.err == nil && p.got != p.want {
			mark, bad = "<-- WRONG", bad+1
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%s (%s)\t%s\n", p.what, p.proto, p.to, got, or(p.want, "refused"), mark)
	}
	tw.Flush()
	if bad > 0 {
		t.Errorf("%s: %d of %d probes wrong:\n%s", step, bad, len(probes), b.String())
	} else {
		t.Logf("%s:\n%s", step, b.String())
	}
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func addrPort(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// nftRuleset is the host's whole ruleset without counter values, which
// the host's own chatter moves.
func nftRuleset(t *testing.T, hostNS string) string {
	t.Helper()
	return testbed.Run(t, "ip", "netns", "exec", hostNS, "nft", "-s", "list", "ruleset")
}

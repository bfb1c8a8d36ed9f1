package e2e

import (
	"net/netip"
	"slices"
	"strings"
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

// sgMatrix is the security group tests' matrix: every port tries every
// service of every other port — TCP connect and echo, UDP echo, UDP to a
// closed port, ping — and each outcome is checked against pol.Allows.
var sgMatrix = testbed.Matrix{TCP: []uint16{sgHTTP, sgPostgres}, UDPEcho: sgUDPEcho, UDPClosed: sgUDPClosed, Wait: sgProbeTimeout}

// checkSGMatrix runs sgMatrix on the ports and checks that it holds both
// allowed and denied probes, or it proves nothing.
func checkSGMatrix(t *testing.T, step string, pol model.Policy, ports []sgPort) {
	t.Helper()
	var mp []testbed.MatrixPort
	for _, p := range ports {
		mp = append(mp, testbed.MatrixPort{Name: p.name, Netns: p.ns, IP: p.ip})
	}
	if allowed, n := sgMatrix.Check(t, step, pol, mp); allowed == 0 || allowed == n {
		t.Errorf("%s: the matrix proves nothing: %d of %d allowed", step, allowed, n)
	}
}

// sgServe runs sgMatrix's services on the port's address, in its
// namespace, until the test ends.
func sgServe(t *testing.T, p sgPort) {
	t.Helper()
	testbed.ServeEcho(t, p.ns, p.ip, sgMatrix.TCP, []uint16{sgMatrix.UDPEcho})
}

// sgDial connects from namespace ns, waiting at most timeout, and has one
// byte echoed.
func sgDial(ns string, to netip.Addr, port uint16, timeout time.Duration) error {
	return testbed.TCPEcho(ns, netip.AddrPortFrom(to, port), timeout, sgProbeTimeout)
}

// sgStartStream starts a stream from namespace client to a listener on to
// in namespace server, about 100 Mbit/s: enough to see a stall at once,
// not so much that the userspace datapath drops the single-packet probes
// the tests run beside it. The client writes, or with download the server
// does (the bulk then flows in the connection's reply direction).
func sgStartStream(t *testing.T, client, server string, to netip.AddrPort, download bool) *testbed.Stream {
	t.Helper()
	return testbed.StartStream(t, client, server, to, download, testbed.Pace{Chunk: 64 << 10, Pause: 5 * time.Millisecond}, sgProbeTimeout)
}

// sgWaitFlowing waits, generously bounded, for another MiB of s to arrive.
func sgWaitFlowing(t *testing.T, s *testbed.Stream, what string) {
	t.Helper()
	if !s.WaitPast(s.Received()+1<<20, 30*time.Second) {
		t.Fatalf("%s: not within 30s", what)
	}
}

// sgWaitStalled waits, generously bounded, until no byte of s has arrived
// for half a second, and returns when the last byte came, measured from
// since.
func sgWaitStalled(t *testing.T, s *testbed.Stream, since time.Time) time.Duration {
	t.Helper()
	return s.WaitStalled(t, since, 500*time.Millisecond, 10*time.Second).Sub(since)
}

// nftMonitor runs `nft monitor` in netns (testbed.NftMonitor) and returns
// a function that stops it and returns the lines it printed about table
// (e.g. "ovs_vnet_sg").
func nftMonitor(t *testing.T, netns, table string) func() []string {
	t.Helper()
	stop := testbed.NftMonitor(t, netns)
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

package e2e

import (
	"bufio"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// cluster is a local cluster made by hack/cluster.sh: host namespaces joined
// by an underlay, a 3-member etcd, a daemon per host.
type cluster struct {
	t     testing.TB
	dir   string
	hosts map[string]*daemon // by host name; each daemon's cmd is the script's, not ours
}

// clusterLease is the daemons' --host-lease: short, so that a dead host's
// ports leave the others within the test's patience.
const clusterLease = "3s"

// startCluster starts n hosts on backend; daemonFlags are added to each
// daemon's command line (after the script's own: a flag given again wins).
func startCluster(t testing.TB, backend string, n int, daemonFlags ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), hosts: map[string]*daemon{}}
	t.Cleanup(func() {
		if t.Failed() {
			for name := range c.hosts {
				out, _ := exec.Command("tail", "-n", "60", filepath.Join(c.dir, name, "daemon.log")).CombinedOutput()
				t.Logf("%s daemon log (tail):\n%s", name, out)
			}
		}
		if out, err := c.script("down", c.dir); err != nil {
			t.Errorf("cluster.sh down: %v\n%s", err, out)
		}
		// The script runs the daemons: their logs (every run of each) are
		// all there is to check for race reports.
		for name := range c.hosts {
			out, _ := os.ReadFile(filepath.Join(c.dir, name, "daemon.log"))
			testbed.CheckRace(t, name+" daemon", string(out), nil)
		}
	})
	args := []string{"up", fmt.Sprint(n), c.dir, "--backend", backend, "--bin", daemonBin, "--lease", clusterLease}
	if len(daemonFlags) > 0 {
		args = append(append(args, "--"), daemonFlags...)
	}
	out, err := c.script(args...)
	if err != nil {
		t.Fatalf("cluster.sh up: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		// host NAME netns NS api URL
		f := strings.Fields(sc.Text())
		if len(f) == 6 && f[0] == "host" && f[2] == "netns" && f[4] == "api" {
			c.hosts[f[1]] = clusterDaemon(t, f[3], f[5])
		}
	}
	if len(c.hosts) != n {
		t.Fatalf("cluster.sh up printed %d host lines, want %d:\n%s", len(c.hosts), n, out)
	}
	return c
}

// clusterDaemon is a client of a daemon the script runs.
func clusterDaemon(t testing.TB, hostNS, url string) *daemon {
	return &daemon{t: t, hostNS: hostNS, base: url, client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: dialInNetns("/var/run/netns/" + hostNS), DisableKeepAlives: true},
	}}
}

func (c *cluster) script(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(repoRoot, "hack", "cluster.sh"), args...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *cluster) run(args ...string) {
	c.t.Helper()
	if out, err := c.script(args...); err != nil {
		c.t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// port attaches a veth port in a namespace of its own on host h and
// returns the namespace and the port's address.
func (c *cluster) port(h, name, network string) (ns, ip string) {
	c.t.Helper()
	ns = newNetns(c.t, "vnt-cl-")
	var p portView
	c.hosts[h].must("PUT", "/v1/ports/"+name, map[string]any{"network": network, "netns": ns, "ifname": "eth0"}, http.StatusCreated, &p)
	ip, _, _ = strings.Cut(p.IP, "/")
	return ns, ip
}

// eventually pings until it works: the other hosts learn of a port through
// the store, a little after its PUT has answered.
func eventually(t *testing.T, ns, ip string) {
	t.Helper()
	waitFor(t, "ping "+ip+" from "+ns, func() bool { return pingOnce(ns, ip) })
}

// TestCluster is issue 9's acceptance: three hosts sharing networks through
// a 3-member etcd, on each backend.
func TestCluster(t *testing.T) {
	testbed.Need(t, lookPath("etcd"), "etcd (apt-get install etcd-server)")
	for _, backend := range []string{"ovs", "linux"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testCluster(t, backend)
		})
	}
}

func lookPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func testCluster(t *testing.T, backend string) {
	c := startCluster(t, backend, 3)
	h1, h2, h3 := c.hosts["h1"], c.hosts["h2"], c.hosts["h3"]

	// Networks and routers are the cluster's: made on one host, on all.
	h1.must("PUT", "/v1/networks/blue", map[string]any{"subnet": "10.61.1.0/24"}, http.StatusCreated, nil)
	h2.must("PUT", "/v1/networks/red", map[string]any{"subnet": "10.61.2.0/24"}, http.StatusCreated, nil)
	h3.must("PUT", "/v1/networks/green", map[string]any{"subnet": "10.61.3.0/24"}, http.StatusCreated, nil)
	for _, h := range []*daemon{h1, h2, h3} {
		waitFor(t, "networks everywhere", func() bool {
			var l struct{ Networks []struct{ Name string } }
			h.must("GET", "/v1/networks", nil, http.StatusOK, &l)
			return len(l.Networks) == 3
		})
	}
	h2.must("PUT", "/v1/networks/blue", map[string]any{"subnet": "10.61.9.0/24"}, http.StatusConflict, nil)
	h3.must("PUT", "/v1/networks/other", map[string]any{"subnet": "10.61.1.128/25"}, http.StatusConflict, nil)
	h3.must("PUT", "/v1/routers/r1", map[string]any{"networks": []string{"blue", "red"}}, http.StatusCreated, nil)

	a1, a1IP := c.port("h1", "a1", "blue")
	a2, a2IP := c.port("h2", "a2", "blue")
	r3, r3IP := c.port("h3", "r3", "red")
	g2, g2IP := c.port("h2", "g2", "green")
	g3, g3IP := c.port("h3", "g3", "green")

	t.Run("within a network", func(t *testing.T) {
		eventually(t, a1, a2IP)
		eventually(t, a2, a1IP)
		eventually(t, g2, g3IP)
		testbed.TransferTCP(t, a1, a2, a2IP, 4<<20)
	})
	t.Run("across a router", func(t *testing.T) {
		eventually(t, a1, r3IP)
		eventually(t, r3, a2IP)
		testbed.TransferTCP(t, r3, a1, a1IP, 4<<20)
	})
	t.Run("isolation", func(t *testing.T) {
		for _, pair := range [][2]string{{g2, a1IP}, {g3, r3IP}, {a1, g3IP}, {r3, g2IP}} {
			ping(t, pair[0], pair[1], false)
		}
	})
	t.Run("ports are the cluster's", func(t *testing.T) {
		var l struct{ Ports []portView }
		h3.must("GET", "/v1/ports?network=blue", nil, http.StatusOK, &l)
		if len(l.Ports) != 2 || l.Ports[0].Host != "h1" || l.Ports[1].Host != "h2" || l.Ports[0].Ofport != 0 {
			t.Errorf("h3 lists blue as %+v, want a1 on h1 and a2 on h2 without ofports", l.Ports)
		}
		h3.must("DELETE", "/v1/ports/a1", nil, http.StatusConflict, nil) // h1 is up: only h1 may
		h2.must("PUT", "/v1/ports/a1", map[string]any{"network": "blue", "type": "tap"}, http.StatusConflict, nil)
	})
	t.Run("each host holds what it needs", func(t *testing.T) {
		// h1's ports are in blue, routed to red: a2 and r3, not green's.
		remoteOf(t, c, "h1", "a2 on h2", "r3 on h3")
		remoteOf(t, c, "h2", "a1 on h1", "g3 on h3", "r3 on h3")
		remoteOf(t, c, "h3", "a1 on h1", "a2 on h2", "g2 on h2")
	})
	t.Run("concurrent attaches get unique addresses", func(t *testing.T) {
		concurrentTaps(t, c)
	})
	t.Run("a host's daemon dies", func(t *testing.T) {
		c.run("stop-host", c.dir, "h3", "--signal", "KILL")
		ping(t, a1, a2IP, true) // the others keep forwarding between themselves
		waitFor(t, "h3's lease expiry seen by h1", func() bool { return !hasHost(t, h1, "h3") })
		// h1 no longer sends to h3's ports, although h3's datapath still would answer.
		remoteOf(t, c, "h1", "a2 on h2")
		remoteOf(t, c, "h2", "a1 on h1")
		ping(t, a1, r3IP, false)
		ping(t, a1, a2IP, true)
		// A change h3 misses while it is down.
		r2, r2IP := c.port("h2", "r2", "red")
		c.run("start-host", c.dir, "h3")
		waitFor(t, "h3 back on h1", func() bool { return hasHost(t, h1, "h3") })
		eventually(t, a1, r3IP)
		eventually(t, g3, g2IP)
		eventually(t, r3, r2IP) // h3 resynced: it knows r2
		eventually(t, r2, r3IP)
		remoteOf(t, c, "h3", "a1 on h1", "a2 on h2", "g2 on h2", "r2 on h2")
	})
	t.Run("etcd member lost", func(t *testing.T) {
		c.run("stop-etcd", c.dir, "1")
		_, b3IP := c.port("h3", "b3", "blue")
		eventually(t, a1, b3IP)
		c.run("start-etcd", c.dir, "1")
	})
	t.Run("etcd gone entirely", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			c.run("stop-etcd", c.dir, fmt.Sprint(i))
		}
		ping(t, a1, a2IP, true)
		ping(t, a1, r3IP, true)
		code, body := h2.do("PUT", "/v1/networks/late", map[string]any{"subnet": "10.61.4.0/24"})
		if code != http.StatusServiceUnavailable {
			t.Errorf("PUT with etcd down: %d %s, want 503", code, body)
		}
		// A delete that cannot be recorded changes nothing: the port is
		// attached again.
		if code, body := h2.do("DELETE", "/v1/ports/a2", nil); code != http.StatusServiceUnavailable {
			t.Errorf("DELETE with etcd down: %d %s, want 503", code, body)
		}
		h2.must("GET", "/v1/ports/a2", nil, http.StatusOK, nil)
		eventually(t, a1, a2IP)
		ping(t, a2, a1IP, true)
		for i := 1; i <= 3; i++ {
			c.run("start-etcd", c.dir, fmt.Sprint(i))
		}
		// Recovery needs no operator: writes work again, and changes flow.
		waitFor(t, "writes after etcd's return", func() bool {
			code, _ := h2.do("PUT", "/v1/networks/late", map[string]any{"subnet": "10.61.4.0/24"})
			return code == http.StatusCreated || code == http.StatusOK
		})
		_, b2IP := c.port("h2", "b2", "blue")
		eventually(t, a1, b2IP)
	})
}

// concurrentTaps attaches taps on every host at once, in one network, and
// checks that the cluster handed out each address once.
func concurrentTaps(t *testing.T, c *cluster) {
	const perHost = 6
	var wg sync.WaitGroup
	errs := make(chan string, 3*perHost)
	for name, h := range c.hosts {
		for i := range perHost {
			wg.Go(func() {
				port := fmt.Sprintf("t-%s-%d", name, i)
				if code, body := h.do("PUT", "/v1/ports/"+port, map[string]any{"network": "blue", "type": "tap"}); code != http.StatusCreated {
					errs <- fmt.Sprintf("PUT %s on %s: %d %s", port, name, code, body)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	var l struct{ Ports []portView }
	waitFor(t, "every tap on h1", func() bool {
		c.hosts["h1"].must("GET", "/v1/ports?network=blue", nil, http.StatusOK, &l)
		return len(l.Ports) >= 2+3*perHost
	})
	seen := map[string]string{}
	for _, p := range l.Ports {
		if other, dup := seen[p.IP]; dup {
			t.Errorf("address %s given to %s and %s", p.IP, other, p.Name)
		}
		seen[p.IP] = p.Name
	}
	for name, h := range c.hosts {
		for i := range perHost {
			h.must("DELETE", fmt.Sprintf("/v1/ports/t-%s-%d", name, i), nil, http.StatusNoContent, nil)
		}
	}
}

// remoteOf checks which other hosts' ports host h forwards to: the daemon's
// ovs_vnet_remote_ports, and on OVS the remote ports' flows themselves.
func remoteOf(t *testing.T, c *cluster, h string, want ...string) {
	t.Helper()
	d := c.hosts[h]
	var got []string
	n := -1.0
	defer func() {
		if t.Failed() {
			t.Logf("%s: ovs_vnet_remote_ports %v, remote ports' flows %v", h, n, got)
		}
	}()
	waitFor(t, fmt.Sprintf("%s forwarding to %v", h, want), func() bool {
		fams := scrape(t, d)
		n = -1
		if f, ok := fams["ovs_vnet_remote_ports"]; ok && len(f.GetMetric()) == 1 {
			n = f.GetMetric()[0].GetGauge().GetValue()
		}
		var info struct{ Backend string }
		d.must("GET", "/v1/info", nil, http.StatusOK, &info)
		if info.Backend != "ovs" {
			return n == float64(len(want))
		}
		var l struct {
			Flows []struct {
				OwnerKind string `json:"owner_kind"`
				Owner     string `json:"owner"`
				Host      string `json:"host"`
			} `json:"flows"`
		}
		d.must("GET", "/v1/flows", nil, http.StatusOK, &l)
		seen := map[string]bool{}
		for _, f := range l.Flows {
			if f.OwnerKind == "remote port" {
				seen[f.Owner+" on "+f.Host] = true
			}
		}
		got = slices.Sorted(maps.Keys(seen))
		return n == float64(len(want)) && slices.Equal(got, want)
	})
}

func hasHost(t *testing.T, d *daemon, name string) bool {
	var l struct{ Hosts []struct{ Name string } }
	d.must("GET", "/v1/hosts", nil, http.StatusOK, &l)
	return slices.ContainsFunc(l.Hosts, func(h struct{ Name string }) bool { return h.Name == name })
}

// TestClusterNAT is issue 21 in a cluster, on each backend: NAT objects are
// the cluster's, and only the host of a forward's port applies it, so the
// same host port forwarded on two hosts is no conflict, and on one host it
// is.
func TestClusterNAT(t *testing.T) {
	testbed.Need(t, lookPath("etcd"), "etcd (apt-get install etcd-server)")
	for _, backend := range []string{"ovs", "linux"} {
		t.Run(backend, func(t *testing.T) {
			c := startCluster(t, backend, 2)
			h1, h2 := c.hosts["h1"], c.hosts["h2"]
			h1.must("PUT", "/v1/networks/blue", map[string]any{"subnet": "10.61.1.0/24"}, http.StatusCreated, nil)
			waitFor(t, "blue on h2", func() bool { code, _ := h2.do("GET", "/v1/networks/blue", nil); return code == http.StatusOK })
			w1, _ := c.port("h1", "w1", "blue")
			w2, _ := c.port("h2", "w2", "blue")
			serveWho(t, w1, []uint16{natWhoPort}, nil)
			serveWho(t, w2, []uint16{natWhoPort}, nil)

			// Made on one host, for a port of the other: applied there.
			h1.must("PUT", "/v1/port-forwards/f2", map[string]any{"port": "w2", "host_port": 8080, "target_port": natWhoPort}, http.StatusCreated, nil)
			h2.must("PUT", "/v1/port-forwards/f1", map[string]any{"port": "w1", "host_port": 8080, "target_port": natWhoPort}, http.StatusCreated, nil)
			var f v1.PortForward
			h1.must("GET", "/v1/port-forwards/f2", nil, http.StatusOK, &f)
			if f.Host != "h2" {
				t.Errorf("forward f2 of port w2: host %q, want h2", f.Host)
			}
			c.port("h1", "w1b", "blue")
			h2.must("PUT", "/v1/port-forwards/f1b", map[string]any{"port": "w1b", "host_port": 8080}, http.StatusConflict, nil)

			h1Addr, h2Addr := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
			probes := []natProbe{
				{what: "h1 → h2:8080 (f2, w2)", ns: h1.hostNS, proto: "tcp", to: addrPort(h2Addr, 8080), want: h1Addr.String()},
				{what: "h2 → h1:8080 (f1, w1)", ns: h2.hostNS, proto: "tcp", to: addrPort(h1Addr, 8080), want: h2Addr.String()},
				{what: "h1 → h1:8080 (f1, w1)", ns: h1.hostNS, proto: "tcp", to: addrPort(h1Addr, 8080), want: h1Addr.String()},
			}
			// A host applies what another made once the store's watch
			// brings it, a little after the PUT answered.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if !slices.ContainsFunc(probes, func(p natProbe) bool { got, err := askWho(p.ns, p.proto, p.to); return err != nil || got != p.want }) {
					break
				}
			}
			runNATProbes(t, "forwards of the same host port on two hosts", probes)
			for h, want := range map[*daemon][2]string{h1: {"f1", "f2"}, h2: {"f2", "f1"}} {
				rs := nftRuleset(t, h.hostNS)
				if !strings.Contains(rs, `port-forward `+want[0]+`"`) || strings.Contains(rs, `port-forward `+want[1]+`"`) {
					t.Errorf("%s's NAT table should hold %s and not %s:\n%s", h.hostNS, want[0], want[1], rs)
				}
			}
		})
	}
}

package e2e

import (
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// sgNets are the two networks of the security group tests, joined by a
// router.
var sgNets = []netSpec{
	{"sg-a", "10.83.1.0/24", "10.83.1.1", false},
	{"sg-b", "10.83.2.0/24", "10.83.2.1", false},
}

// sgGroups are the groups, in an order they can be made in (a group must
// exist before a rule names it): web takes HTTP from anyone, db PostgreSQL
// (and the stream's port) and the UDP echo ports from web's members only,
// and both take ping from admin's members only; admin's own egress is
// limited to HTTP and ping.
var sgGroups = []struct{ name, spec string }{
	{"admin", `{"rules":[{"direction":"egress","protocol":"tcp","ports":"80"},{"direction":"egress","protocol":"icmp"}]}`},
	{"web", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"80"},
		{"direction":"ingress","protocol":"icmp","remote_group":"admin"}]}`},
	{"db", sgDB(true)},
}

// sgDB is db's spec, with or without its PostgreSQL rule (the live change).
func sgDB(postgres bool) string {
	rules := []string{
		`{"direction":"ingress","protocol":"udp","ports":"5353-5354","remote_group":"web"}`,
		`{"direction":"ingress","protocol":"icmp","remote_group":"admin"}`,
	}
	if postgres {
		rules = append([]string{`{"direction":"ingress","protocol":"tcp","ports":"5432-5434","remote_group":"web"}`}, rules...)
	}
	return `{"rules":[` + strings.Join(rules, ",") + `]}`
}

// makeSGTopology makes the networks, the router and the groups through
// d's API.
func makeSGTopology(t *testing.T, d *daemon) {
	t.Helper()
	for _, n := range sgNets {
		d.must("PUT", "/v1/networks/"+n.name, map[string]any{"subnet": n.subnet}, http.StatusCreated, nil)
	}
	d.must("PUT", "/v1/routers/sg", `{"networks":["sg-a","sg-b"]}`, http.StatusCreated, nil)
	for _, g := range sgGroups {
		d.must("PUT", "/v1/security-groups/"+g.name, g.spec, http.StatusCreated, nil)
	}
}

// sgPorts are the ports: web and an unguarded one in sg-a, db and admin in
// sg-b, so that most pairs cross the router.
func sgPorts() []sgPort {
	return []sgPort{
		{name: "web", network: "sg-a", ip: netip.MustParseAddr("10.83.1.10"), groups: []string{"web"}},
		{name: "other", network: "sg-a", ip: netip.MustParseAddr("10.83.1.11")},
		{name: "db", network: "sg-b", ip: netip.MustParseAddr("10.83.2.10"), groups: []string{"db"}},
		{name: "admin", network: "sg-b", ip: netip.MustParseAddr("10.83.2.11"), groups: []string{"admin"}},
	}
}

// TestSecurityGroups is issue 20's acceptance on one host, both backends,
// through a real daemon's API: the policy matrix (docs/DESIGN.md §8.1),
// live changes (a removed rule cuts an established stream within a
// second, an added one lets the next connection through, a port's groups
// change in place without losing a ping), restarts of the daemon
// (SIGKILL) and of ovs-vswitchd that keep allowed connections alive and
// denied ones denied, the daemon's restart without a change to the
// datapath, and fragments judged whole in a network of the smallest MTU.
func TestSecurityGroups(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) { runSecurityGroups(t, bc) })
	}
}

func runSecurityGroups(t *testing.T, bc backendCase) {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	d := startDaemon(t, hostNS, args...)
	makeSGTopology(t, d)
	ports := sgPorts()
	byName := map[string]sgPort{}
	for i := range ports {
		ports[i].ns = newNetns(t, "vnt-sg-")
		d.must("PUT", "/v1/ports/"+ports[i].name, ports[i].spec(), http.StatusCreated, nil)
		sgServe(t, ports[i])
		byName[ports[i].name] = ports[i]
	}
	web, other, db, admin := byName["web"], byName["other"], byName["db"], byName["admin"]
	pol := sgOracle(t, d, ports)

	t.Run("matrix", func(t *testing.T) { checkSGMatrix(t, "matrix", pol, ports) })

	t.Run("a removed rule cuts an established stream", func(t *testing.T) {
		s := sgStartStream(t, web.ns, db.ns, netip.AddrPortFrom(db.ip, sgStream), false)
		sgWaitFlowing(t, s, "web → db stream flowing")
		sent := s.Received()
		d.must("PUT", "/v1/security-groups/db", sgDB(false), http.StatusOK, nil)
		answered := s.Received()
		last := sgWaitStalled(t, s, time.Now())
		t.Logf("%d KiB of the stream came while the PUT was under way, %d KiB after its answer; the last %v after it",
			(answered-sent)>>10, (s.Received()-answered)>>10, last)
		if last >= time.Second {
			t.Errorf("the stream's last bytes came %v after the PUT's answer, want under 1s", last)
		}
		if err := sgDial(web.ns, db.ip, sgPostgres, sgProbeTimeout); err == nil {
			t.Error("a new connection passed the removed rule")
		}
	})
	t.Run("an added rule lets the next connection through", func(t *testing.T) {
		d.must("PUT", "/v1/security-groups/db", sgDB(true), http.StatusOK, nil)
		// One connection, its SYN retransmission allowed for: the first
		// SYN meets the rule or the test fails.
		start := time.Now()
		if err := sgDial(web.ns, db.ip, sgPostgres, 10*time.Second); err != nil {
			t.Fatalf("the rule is back, but the first new connection failed: %v", err)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("the first new connection took %v: its first SYN was dropped", took)
		}
	})
	t.Run("a port's groups change in place without loss", func(t *testing.T) {
		checkGroupsInPlace(t, d, ports, "admin", "other", "web")
	})

	t.Run("restarts", func(t *testing.T) {
		// An allowed connection held open across the restarts, and a
		// denied one tried after each.
		held, err := testbed.Connect(web.ns, netip.AddrPortFrom(db.ip, sgPostgres), sgProbeTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		alive := func(step string, within time.Duration) {
			t.Helper()
			if err := testbed.Echo(held, within); err != nil {
				t.Errorf("%s: the established web → db connection: %v", step, err)
			}
			if err := sgDial(other.ns, db.ip, sgPostgres, sgProbeTimeout); err == nil {
				t.Errorf("%s: other → db, denied, connected", step)
			}
		}
		alive("before", sgProbeTimeout)
		// And streams both ways of web's connections to db: web's upload
		// flows in the connections' original direction, its download in
		// the reply direction, which web's own rules would not let in.
		streams := map[string]*testbed.Stream{
			"upload":   sgStartStream(t, web.ns, db.ns, netip.AddrPortFrom(db.ip, sgStream), false),
			"download": sgStartStream(t, web.ns, db.ns, netip.AddrPortFrom(db.ip, sgDownload), true),
		}
		flowing := func(step string, names ...string) {
			t.Helper()
			for _, name := range names {
				s := streams[name]
				start := time.Now()
				sgWaitFlowing(t, s, step+": web's "+name+" flowing")
				t.Logf("%s: web's %s flowing after %v", step, name, time.Since(start))
			}
		}
		flowing("before", "upload", "download")

		var flows *flowWatch
		var nftEvents func() []string
		if box != nil {
			flows = watchFlows(t, box, "br-vnet")
			flows.changes()
		} else {
			nftEvents = nftMonitor(t, hostNS, "ovs_vnet_sg")
		}
		d.kill()
		alive("daemon killed", sgProbeTimeout)
		d.start()
		if box != nil {
			checkSwitchChanges(t, "daemon restart", flows.changes(), nil, nil)
		} else if ev := nftEvents(); len(ev) != 0 {
			t.Errorf("daemon restart: nft monitor saw %d changes of ovs_vnet_sg, want none:\n%s", len(ev), strings.Join(ev, "\n"))
		}
		alive("daemon restarted", sgProbeTimeout)
		flowing("daemon restarted", "upload", "download")
		checkSGMatrix(t, "after the daemon's restart", pol, ports)
		if box == nil {
			return
		}

		// ovs-vswitchd forgets its flows and conntrack: the daemon
		// restores the flows, and the held connection's next packet (web
		// sends it: the original direction) is judged again and allowed.
		box.RestartVswitchd(t)
		waitFor(t, "admin → web ping after the vswitchd restart", func() bool { return testbed.Ping(admin.ns, web.ip, sgProbeTimeout) == nil })
		alive("vswitchd restarted", 30*time.Second)
		// The download too: ovs-vswitchd's conntrack went with it, and
		// the download's next packet, from db, is the first its new
		// conntrack sees, the wrong way round; web's egress and db's
		// ingress allow its reverse, so it passes (flows/pipeline's
		// policyBase).
		flowing("vswitchd restarted", "upload", "download")
		checkSGMatrix(t, "after the vswitchd restart", pol, ports)
	})

	t.Run("fragments in a small network", func(t *testing.T) {
		// A ping of 1,400 bytes in a network of MTU 576 is three
		// fragments each way, the last smaller than OVS's default minimum
		// fragment: conntrack must reassemble them to judge the ping
		// (allowed: admin's egress, web's ingress from admin) and its
		// reply.
		d.must("PUT", "/v1/networks/sg-small", map[string]any{"subnet": "10.83.3.0/24", "mtu": 576}, http.StatusCreated, nil)
		from := sgPort{name: "small-admin", network: "sg-small", ns: newNetns(t, "vnt-sg-"), ip: netip.MustParseAddr("10.83.3.10"), groups: []string{"admin"}}
		to := sgPort{name: "small-web", network: "sg-small", ns: newNetns(t, "vnt-sg-"), ip: netip.MustParseAddr("10.83.3.11"), groups: []string{"web"}}
		for _, p := range []sgPort{from, to} {
			d.must("PUT", "/v1/ports/"+p.name, p.spec(), http.StatusCreated, nil)
			if mtu := linkIn(t, p.ns, "eth0").Attrs().MTU; mtu != 576 {
				t.Fatalf("%s's eth0 has MTU %d, want the network's 576", p.name, mtu)
			}
		}
		if out, err := exec.Command("ip", "netns", "exec", from.ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "1400", to.ip.String()).CombinedOutput(); err != nil {
			t.Errorf("ping -s 1400 %s → %s in a network of MTU 576: %v\n%s", from.name, to.name, err, out)
		}
	})
}

// checkGroupsInPlace changes to's groups with PUTs (none → web → none)
// while from pings it every 10 ms: from's pings are allowed before (to has
// no groups), during (web takes ping from admin) and after, so not one may
// be lost; the PUTs answer 200 and leave the port's link alone (same
// ifindex in its namespace: no re-attach, docs/DESIGN.md §8.0). After each
// PUT a PostgreSQL connection from peer shows the datapath enforces the
// port's new groups, as the oracle of ports says.
func checkGroupsInPlace(t *testing.T, d *daemon, ports []sgPort, from, to, peer string) {
	t.Helper()
	byName := map[string]*sgPort{}
	for i := range ports {
		byName[ports[i].name] = &ports[i]
	}
	src, dst, pr := *byName[from], byName[to], *byName[peer]
	ifindex := func() int { return linkIn(t, dst.ns, "eth0").Attrs().Index }
	before := ifindex()
	const count = "600"
	ping := exec.Command("ip", "netns", "exec", src.ns, "ping", "-i", "0.01", "-c", count, "-W", "1", dst.ip.String())
	var out testbed.SyncBuffer
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	for _, groups := range [][]string{{"web"}, nil} {
		dst.groups = groups
		var view portView
		d.must("PUT", "/v1/ports/"+dst.name, dst.spec(), http.StatusOK, &view)
		if strings.Join(view.SecurityGroups, ",") != strings.Join(groups, ",") {
			t.Errorf("PUT %s with groups %v answered groups %v", dst.name, groups, view.SecurityGroups)
		}
		eg, in := sgOracle(t, d, ports).Allows(model.Packet{SrcPort: pr.name, DstPort: dst.name, Src: pr.ip, Dst: dst.ip, Proto: model.ProtoTCP, DPort: sgPostgres})
		err := sgDial(pr.ns, dst.ip, sgPostgres, sgProbeTimeout)
		if want := eg.Allowed && in.Allowed; (err == nil) != want {
			t.Errorf("%s in groups %v: %s → %s port %d passed %v, want %v: %v", dst.name, groups, pr.name, dst.name, sgPostgres, err == nil, want, err)
		}
	}
	err := ping.Wait()
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out.String())
	if err != nil || m == nil || m[1] != count || m[2] != count {
		t.Errorf("ping %s → %s every 10 ms while its groups changed: %v\n%s", src.name, dst.name, err, out.String())
	}
	if after := ifindex(); after != before {
		t.Errorf("%s's eth0 is ifindex %d after the PUTs, was %d: the port was attached again", dst.name, after, before)
	}
}

// TestSecurityGroupCluster is the matrix across the two hosts of
// hack/cluster.sh, on each backend: web and admin on h1, db and the
// unguarded port on h2, so that db's rule naming web's members is
// enforced on h2 with h1's port's address, and web's rule naming admin's
// on h1 with h1's; on OVS also a download from h2 kept across h1's
// ovs-vswitchd restart.
func TestSecurityGroupCluster(t *testing.T) {
	testbed.Need(t, lookPath("etcd"), "etcd (apt-get install etcd-server)")
	for _, backend := range []string{"ovs", "linux"} {
		t.Run(backend, func(t *testing.T) { testSGCluster(t, backend) })
	}
}

func testSGCluster(t *testing.T, backend string) {
	c := startCluster(t, backend, 2)
	h1, h2 := c.hosts["h1"], c.hosts["h2"]
	makeSGTopology(t, h1)
	waitFor(t, "the groups on h2", func() bool {
		var l v1.SecurityGroupList
		h2.must("GET", "/v1/security-groups", nil, http.StatusOK, &l)
		return len(l.SecurityGroups) == len(sgGroups)
	})
	host := map[string]*daemon{"web": h1, "admin": h1, "db": h2, "other": h2}
	ports := sgPorts()
	byName := map[string]sgPort{}
	for i := range ports {
		ports[i].ns = newNetns(t, "vnt-sgc-")
		host[ports[i].name].must("PUT", "/v1/ports/"+ports[i].name, ports[i].spec(), http.StatusCreated, nil)
		sgServe(t, ports[i])
		byName[ports[i].name] = ports[i]
	}
	// Each host learns the other's ports through the store, a little after
	// their PUTs: wait for an allowed probe across the hosts each way.
	waitFor(t, "web (h1) → db (h2) on PostgreSQL", func() bool {
		return sgDial(byName["web"].ns, byName["db"].ip, sgPostgres, sgProbeTimeout) == nil
	})
	waitFor(t, "other (h2) → web (h1) on HTTP", func() bool {
		return sgDial(byName["other"].ns, byName["web"].ip, sgHTTP, sgProbeTimeout) == nil
	})
	checkSGMatrix(t, "across hosts", sgOracle(t, h1, ports), ports)
	if backend != "ovs" {
		return // the kernel's conntrack outlives the daemon
	}

	// Must 6 across hosts: h1's ovs-vswitchd forgets conntrack, and db's
	// next packet of web's download comes from the tunnel, the first h1's
	// new conntrack sees and the wrong way round. In the pickup window h1
	// opened as its new switch connected (datapath/ovs/pickup.go), h1
	// judges db's side of its reverse by db's groups itself
	// (flows/pipeline's policyBase): db's
	// ingress allows web → db, web's egress is open, so it passes at db's
	// next retransmission. Without that it waits for web, which has nothing
	// to send: 27 s here, or for good.
	t.Run("an ovs-vswitchd restart keeps a cross-host download", func(t *testing.T) {
		web, db := byName["web"], byName["db"]
		s := sgStartStream(t, web.ns, db.ns, netip.AddrPortFrom(db.ip, sgDownload), true)
		sgWaitFlowing(t, s, "web's download from db flowing")
		testbed.Run(t, filepath.Join(repoRoot, "hack", "ovs-sandbox.sh"), "restart-vswitchd", filepath.Join(c.dir, "h1", "ovs"))
		start := time.Now()
		sgWaitFlowing(t, s, "web's download from db flowing after h1's vswitchd restart")
		took := time.Since(start)
		t.Logf("web's download flowing %v after h1's vswitchd restart", took)
		if took > 10*time.Second {
			t.Errorf("web's download resumed %v after h1's vswitchd restart, want within 10s (db's retransmissions)", took)
		}
	})
}

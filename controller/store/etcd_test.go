package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// openEtcd opens a store of its own on the cluster: a fresh prefix, so that
// tests share a cluster without seeing each other. Closed at cleanup.
func openEtcd(t *testing.T, cluster *testbed.Etcd, prefix string, tweak ...func(*EtcdConfig)) (*Etcd, *logBuf) {
	t.Helper()
	log, buf := newLog(t)
	cfg := EtcdConfig{Endpoints: cluster.Endpoints(), Prefix: prefix, Log: log}
	for _, f := range tweak {
		f(&cfg)
	}
	s, err := OpenEtcd(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, buf
}

func uniquePrefix() string { return "/" + testbed.UniqueName("t-") }

func TestEtcd(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	testStore(t, func(t *testing.T) Store {
		s, _ := openEtcd(t, cluster, uniquePrefix())
		return s
	})
}

// TestEtcdSemantics pins down what the store relies on in etcd (3.4 here):
// comparisons on missing keys and on empty ranges.
func TestEtcdSemantics(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	cli := cluster.Client(t)
	ctx := t.Context()
	if _, err := cli.Put(ctx, "/sem/ipam/blue/10.1.0.5", "a"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cmp  clientv3.Cmp
		want bool
	}{
		{"missing key: mod revision 0", clientv3.Compare(clientv3.ModRevision("/sem/topology"), "=", 0), true},
		{"missing key: create revision 0", clientv3.Compare(clientv3.CreateRevision("/sem/none"), "=", 0), true},
		{"missing key: value never equal", clientv3.Compare(clientv3.Value("/sem/none"), "=", ""), false},
		{"empty range: create revision 0", clientv3.Compare(clientv3.CreateRevision("/sem/ipam/red/"), "=", 0).WithPrefix(), true},
		{"non-empty range: create revision not 0", clientv3.Compare(clientv3.CreateRevision("/sem/ipam/blue/"), "=", 0).WithPrefix(), false},
		{"prefix ends at the slash", clientv3.Compare(clientv3.CreateRevision("/sem/ipam/blu/"), "=", 0).WithPrefix(), true},
	} {
		resp, err := cli.Txn(ctx).If(c.cmp).Commit()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Succeeded != c.want {
			t.Errorf("%s: compare %v, want %v", c.name, resp.Succeeded, c.want)
		}
	}
}

// TestEtcdConcurrentPorts: three hosts, each with its own client, attach
// ports at once with addresses picked to collide. No address is stored
// twice, every refusal is ErrConflict, and every address tried ends up
// held by exactly one port.
func TestEtcdConcurrentPorts(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	prefix := uniquePrefix()
	var hosts []*Etcd
	for range 3 {
		s, _ := openEtcd(t, cluster, prefix)
		hosts = append(hosts, s)
	}
	ctx := t.Context()
	if _, err := hosts[0].CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	const perHost = 30
	var (
		mu      sync.Mutex
		won     = map[netip.Addr]string{}
		tried   = map[netip.Addr]bool{}
		refused int
		wg      sync.WaitGroup
	)
	start := time.Now()
	for h, s := range hosts {
		for i := range perHost {
			wg.Go(func() {
				p := port(fmt.Sprintf("p%d-%d", h, i), "blue", fmt.Sprintf("10.1.0.%d", 10+(h*7+i*3)%20))
				p.Host = fmt.Sprintf("h%d", h)
				err := s.CreatePort(ctx, p)
				mu.Lock()
				defer mu.Unlock()
				tried[p.IP] = true
				switch {
				case err == nil:
					if other, ok := won[p.IP]; ok {
						t.Errorf("%s and %s both got %s", other, p.Name, p.IP)
					}
					won[p.IP] = p.Name
				case errors.Is(err, ErrConflict) && strings.Contains(err.Error(), "address "+p.IP.String()+" is in use by port p"):
					refused++
				default:
					t.Errorf("port %s: %v (want success or ErrConflict)", p.Name, err)
				}
			})
		}
	}
	wg.Wait()
	t.Logf("%d creates from 3 clients in %v: %d stored, %d refused", 3*perHost, time.Since(start), len(won), refused)
	if len(won) != len(tried) {
		t.Errorf("%d addresses tried, %d held", len(tried), len(won))
	}
	st, err := hosts[1].Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	for _, p := range st.Ports {
		if other, ok := seen[p.IP]; ok {
			t.Errorf("stored twice: %s by %s and %s", p.IP, other, p.Name)
		}
		seen[p.IP] = p.Name
		if won[p.IP] != p.Name {
			t.Errorf("stored %s for %s, but %s was told it won", p.IP, p.Name, won[p.IP])
		}
	}
	if len(st.Ports) != len(won) {
		t.Errorf("stored %d ports, %d creates succeeded", len(st.Ports), len(won))
	}
	// The addresses and the records agree: deleting every port frees all.
	for _, p := range st.Ports {
		if err := hosts[2].DeletePort(ctx, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := hosts[0].DeleteNetwork(ctx, "blue"); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdConcurrentNetworks: from three clients at once, networks whose
// subnets all overlap (exactly one wins), then networks that do not overlap
// (all win, each with its own ID).
func TestEtcdConcurrentNetworks(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	prefix := uniquePrefix()
	var hosts []*Etcd
	for range 3 {
		s, _ := openEtcd(t, cluster, prefix)
		hosts = append(hosts, s)
	}
	ctx := t.Context()
	for _, c := range []struct {
		name    string
		subnet  func(h, i int) string
		wantWon int
	}{
		{"overlapping", func(h, i int) string { return fmt.Sprintf("10.9.0.0/%d", 16+(h*10+i)%9) }, 1},
		{"disjoint", func(h, i int) string { return fmt.Sprintf("10.%d.0.0/16", 100+h*10+i) }, 30},
	} {
		var (
			mu  sync.Mutex
			won []model.Network
			wg  sync.WaitGroup
		)
		start := time.Now()
		for h, s := range hosts {
			for i := range 10 {
				wg.Go(func() {
					n, err := s.CreateNetwork(ctx, network(fmt.Sprintf("%s-%d-%d", c.name[:4], h, i), c.subnet(h, i)))
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						won = append(won, n)
					case !errors.Is(err, ErrConflict):
						t.Errorf("%s: %v (want success or ErrConflict)", c.name, err)
					}
				})
			}
		}
		wg.Wait()
		t.Logf("%s: 30 creates from 3 clients in %v, %d won", c.name, time.Since(start), len(won))
		if len(won) != c.wantWon {
			t.Errorf("%s: %d won, want %d", c.name, len(won), c.wantWon)
		}
		st, err := hosts[0].Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[int]string{}
		for _, n := range st.Networks {
			if other, ok := ids[n.ID]; ok {
				t.Errorf("networks %s and %s share id %d", other, n.Name, n.ID)
			}
			ids[n.ID] = n.Name
			for _, o := range st.Networks {
				if o.Name != n.Name && o.Subnet.Overlaps(n.Subnet) {
					t.Errorf("stored overlapping %s %s and %s %s", n.Name, n.Subnet, o.Name, o.Subnet)
				}
			}
		}
	}
}

// nextEvent waits for the next event on a watch.
func nextEvent(t *testing.T, events <-chan Event, within time.Duration) Event {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("watch closed")
		}
		return e
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
	}
	return Event{}
}

func describe(e Event) string {
	obj := "deleted"
	switch {
	case e.Reset:
		return "reset"
	case e.Network != nil:
		obj = fmt.Sprintf("%s %s #%d", e.Network.Name, e.Network.Subnet, e.Network.ID)
	case e.Router != nil:
		obj = fmt.Sprintf("%s %v", e.Router.Name, e.Router.Networks)
	case e.Port != nil:
		obj = fmt.Sprintf("%s %s on %s ofport %d", e.Port.Name, e.Port.IP, e.Port.Host, e.Port.Ofport)
	case e.Host != nil:
		obj = fmt.Sprintf("%s %s", e.Host.Name, e.Host.UnderlayIP)
	}
	return e.Kind + " " + e.Name + ": " + obj
}

// TestEtcdWatch: what one host writes, another sees, in order, one event
// per object change, with the store's bookkeeping (addresses, topology)
// left out.
func TestEtcdWatch(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	prefix := uniquePrefix()
	a, _ := openEtcd(t, cluster, prefix)
	b, _ := openEtcd(t, cluster, prefix, func(c *EtcdConfig) { c.LeaseTTL = 2 * time.Second })
	ctx := t.Context()
	if _, err := a.CreateNetwork(ctx, network("old", "10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	st, err := a.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != 1 || st.Revision == 0 {
		t.Fatalf("load: %+v", st)
	}
	events := a.Watch(ctx, st.Revision+1)

	p := port("p1", "blue", "10.1.0.5")
	p.Host = "h2"
	updated := p
	updated.Ofport = 3
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan error, 1)
	steps := []struct {
		do   func() error
		want []string
	}{
		{func() error { _, err := b.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); return err },
			[]string{"network blue: blue 10.1.0.0/24 #2"}},
		{func() error { _, err := b.CreateNetwork(ctx, network("red", "10.2.0.0/24")); return err },
			[]string{"network red: red 10.2.0.0/24 #3"}},
		{func() error { _, err := b.PutRouter(ctx, router("r1", 1, "blue", "red")); return err }, []string{"router r1: r1 [blue red]"}},
		{func() error { return b.CreatePort(ctx, p) }, []string{"port p1: p1 10.1.0.5 on h2 ofport 0"}},
		{func() error { return b.UpdatePort(ctx, updated) }, []string{"port p1: p1 10.1.0.5 on h2 ofport 3"}},
		{func() error { return b.DeletePort(ctx, "p1") }, []string{"port p1: deleted"}},
		{func() error { return b.DeleteRouter(ctx, "r1") }, []string{"router r1: deleted"}},
		{func() error { return b.DeleteNetwork(ctx, "red") }, []string{"network red: deleted"}},
		{func() error {
			go func() { regDone <- b.Register(regCtx, Host{Name: "h2", UnderlayIP: netip.MustParseAddr("192.0.2.2")}) }()
			return nil
		}, []string{"host h2: h2 192.0.2.2"}},
		// Register returns without revoking: the record goes when the lease
		// runs out (2s TTL).
		{func() error { stopReg(); return <-regDone }, []string{"host h2: deleted"}},
	}
	last := st.Revision
	for i, s := range steps {
		start := time.Now()
		if err := s.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for _, want := range s.want {
			e := nextEvent(t, events, 5*time.Second)
			if got := describe(e); got != want {
				t.Fatalf("step %d: event %q, want %q", i, got, want)
			}
			if e.Revision <= last {
				t.Errorf("step %d: revision %d after %d", i, e.Revision, last)
			}
			last = e.Revision
		}
		if i == len(steps)-1 {
			t.Logf("host record gone %v after Register returned", time.Since(start).Round(10*time.Millisecond))
		}
	}
	select {
	case e := <-events:
		t.Errorf("unexpected event %s", describe(e))
	case <-time.After(100 * time.Millisecond):
	}
}

// TestEtcdWatchReset: a watch from a compacted revision says Reset and
// closes.
func TestEtcdWatchReset(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	s, _ := openEtcd(t, cluster, uniquePrefix())
	ctx := t.Context()
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.CreateNetwork(ctx, network("blue", "10.1.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	// Compact away the revision of the network's creation.
	cli := cluster.Client(t)
	resp, err := cli.Put(ctx, "/elsewhere", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	events := s.Watch(ctx, st.Revision+1)
	if e := nextEvent(t, events, 5*time.Second); !e.Reset {
		t.Fatalf("got %s, want reset", describe(e))
	}
	select {
	case e, ok := <-events:
		if ok {
			t.Fatalf("after reset: %s", describe(e))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch not closed after reset")
	}
	// Load and watch again: the network is there, the next change arrives.
	st, err = s.Load(ctx)
	if err != nil || len(st.Networks) != 1 || st.Networks[0] != n {
		t.Fatalf("load after reset: %+v %v", st, err)
	}
	events = s.Watch(ctx, st.Revision+1)
	if err := s.DeleteNetwork(ctx, "blue"); err != nil {
		t.Fatal(err)
	}
	if got := describe(nextEvent(t, events, 5*time.Second)); got != "network blue: deleted" {
		t.Fatalf("got %s", got)
	}
}

// hostLease is the lease a host record is on, 0 when there is none.
func hostLease(t *testing.T, cli *clientv3.Client, prefix, host string) clientv3.LeaseID {
	t.Helper()
	resp, err := cli.Get(t.Context(), prefix+"/v1/hosts/"+host)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}

// TestEtcdRegister: a record on a lease; a revoked lease is replaced (logged
// once); a restarted daemon's record moves to its new lease, so the old
// lease expiring does not take it away; when Register ends the record
// stays until its lease runs out.
func TestEtcdRegister(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	cli := cluster.Client(t)
	prefix := uniquePrefix()
	const ttl = 2 * time.Second
	s, log := openEtcd(t, cluster, prefix, func(c *EtcdConfig) { c.LeaseTTL = ttl })
	h := Host{Name: "h1", UnderlayIP: netip.MustParseAddr("192.0.2.1")}
	register := func() (stop func()) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Register(ctx, h) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("register: %v", err)
			}
		}
	}

	stop := register()
	var first clientv3.LeaseID
	eventually(t, 5*time.Second, "registered", func() bool { first = hostLease(t, cli, prefix, "h1"); return first != 0 })
	if _, err := cli.Revoke(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	var second clientv3.LeaseID
	took := eventually(t, 5*time.Second, "registered again after revoke", func() bool {
		second = hostLease(t, cli, prefix, "h1")
		return second != 0 && second != first
	})
	t.Logf("re-registered %v after the lease was revoked", took.Round(10*time.Millisecond))
	if n := log.count("host registration lost; registering again"); n != 1 {
		t.Errorf("logged the loss %d times", n)
	}
	if n := log.count("host registered again"); n != 1 {
		t.Errorf("logged the return %d times", n)
	}

	// A daemon restart: Register ends, another begins at once.
	stop()
	if hostLease(t, cli, prefix, "h1") != second {
		t.Fatal("Register revoked its lease on return")
	}
	stop = register()
	var third clientv3.LeaseID
	eventually(t, 5*time.Second, "registered on a new lease", func() bool {
		third = hostLease(t, cli, prefix, "h1")
		return third != second
	})
	time.Sleep(ttl + time.Second) // the old lease expires
	if got := hostLease(t, cli, prefix, "h1"); got != third {
		t.Fatalf("after the old lease expired: lease %x, want %x", got, third)
	}

	// Gone for good: the record goes with its lease.
	stop()
	took = eventually(t, ttl+3*time.Second, "record expires", func() bool { return hostLease(t, cli, prefix, "h1") == 0 })
	t.Logf("record gone %v after Register returned (TTL %v)", took.Round(10*time.Millisecond), ttl)
}

// TestEtcdOutage: with its only member down, every call fails with
// ErrUnavailable within about OpTimeout; once it is back, writes work
// again and a watch opened before the outage goes on, without the caller
// doing anything.
func TestEtcdOutage(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	const opTimeout = time.Second
	s, log := openEtcd(t, cluster, uniquePrefix(), func(c *EtcdConfig) { c.OpTimeout = opTimeout })
	ctx := t.Context()
	if _, err := s.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := s.Watch(ctx, st.Revision+1)

	cluster.Stop(0)
	var wg sync.WaitGroup
	for _, c := range []struct {
		name string
		do   func() error
	}{
		{"create port", func() error { return s.CreatePort(ctx, port("a", "blue", "10.1.0.5")) }},
		{"create network", func() error { _, err := s.CreateNetwork(ctx, network("red", "10.2.0.0/24")); return err }},
		{"delete port", func() error { return s.DeletePort(ctx, "a") }},
		{"load", func() error { _, err := s.Load(ctx); return err }},
	} {
		wg.Go(func() {
			start := time.Now()
			err := c.do()
			took := time.Since(start)
			t.Logf("%s with etcd down: %v after %v", c.name, err, took.Round(time.Millisecond))
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: %v, want ErrUnavailable", c.name, err)
			}
			if took > opTimeout+500*time.Millisecond {
				t.Errorf("%s took %v, OpTimeout is %v", c.name, took, opTimeout)
			}
		})
	}
	wg.Wait()
	start := time.Now()
	_, err = OpenEtcd(ctx, EtcdConfig{Endpoints: cluster.Endpoints(), OpTimeout: opTimeout})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("open with etcd down: %v, want ErrUnavailable", err)
	}
	t.Logf("open with etcd down: %v after %v", err, time.Since(start).Round(time.Millisecond))

	cluster.Start(0)
	start = time.Now()
	eventually(t, 10*time.Second, "writes work again", func() bool {
		// A try that timed out may have been applied all the same.
		err := s.CreatePort(ctx, port("a", "blue", "10.1.0.5"))
		return err == nil || errors.Is(err, ErrExists)
	})
	t.Logf("first write succeeded %v after the member was started", time.Since(start).Round(10*time.Millisecond))
	if got := describe(nextEvent(t, events, 10*time.Second)); got != "port a: a 10.1.0.5 on h1 ofport 0" {
		t.Fatalf("after the outage: %s", got)
	}
	t.Logf("watch log lines: lost %d, resumed %d", log.count("watch lost; resuming"), log.count("watch resumed"))
}

// TestEtcdMemberDown: a 3-member cluster with one member killed — a
// follower, then the leader — still takes writes, from a client that knows
// all three, and the watch goes on.
func TestEtcdMemberDown(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 3)
	cli := cluster.Client(t)
	s, _ := openEtcd(t, cluster, uniquePrefix())
	ctx := t.Context()
	if _, err := s.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := s.Watch(ctx, st.Revision+1)
	leader := func() int {
		for i, ep := range cluster.Endpoints() {
			if st, err := cli.Status(ctx, ep); err == nil && st.Leader == st.Header.MemberId {
				return i
			}
		}
		t.Fatal("no leader")
		return -1
	}
	for _, role := range []string{"follower", "leader"} {
		victim := leader()
		if role == "follower" {
			victim = (victim + 1) % 3
		}
		cluster.Stop(victim)
		start := time.Now()
		p := port("p-"+role, "blue", "10.1.0.5")
		if role == "leader" {
			p.IP = netip.MustParseAddr("10.1.0.6")
		}
		if err := s.CreatePort(ctx, p); err != nil {
			t.Fatalf("%s down: %v", role, err)
		}
		t.Logf("%s (member %d) down: write took %v", role, victim, time.Since(start).Round(time.Millisecond))
		if got := describe(nextEvent(t, events, 10*time.Second)); !strings.HasPrefix(got, "port "+p.Name+":") {
			t.Fatalf("%s down: event %s", role, got)
		}
		cluster.Start(victim)
	}
}

// TestEtcdTLS: a cluster that serves TLS and requires client certificates.
func TestEtcdTLS(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1, testbed.EtcdTLS())
	s, _ := openEtcd(t, cluster, uniquePrefix(), func(c *EtcdConfig) {
		c.CAFile, c.CertFile, c.KeyFile = cluster.CAFile, cluster.CertFile, cluster.KeyFile
	})
	if _, err := s.CreateNetwork(t.Context(), network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	_, err := OpenEtcd(t.Context(), EtcdConfig{Endpoints: cluster.Endpoints(), CAFile: cluster.CAFile, OpTimeout: time.Second})
	if err == nil {
		t.Fatal("no client certificate, yet connected")
	}
	t.Logf("without a client certificate: %v", err)
	for _, c := range []struct {
		name string
		cfg  EtcdConfig
		want string
	}{
		{"certificate without key", EtcdConfig{CertFile: cluster.CertFile}, "needs both"},
		{"missing CA file", EtcdConfig{CAFile: cluster.CAFile + ".missing"}, "no such file"},
		{"CA file without PEM", EtcdConfig{CAFile: "/dev/null"}, "no PEM certificate"},
		{"plain endpoint", EtcdConfig{CAFile: cluster.CAFile, Endpoints: []string{"http://127.0.0.1:1"}}, "is not TLS"},
	} {
		if c.cfg.Endpoints == nil {
			c.cfg.Endpoints = cluster.Endpoints()
		}
		if _, err := OpenEtcd(t.Context(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestEtcdQuorumLost: two of three members down. Writes fail with
// ErrUnavailable; the remaining member ends the watch (no leader) and the
// store keeps opening it again; the host's lease runs out. Each is logged
// once. With the members back, without the caller doing anything, writes
// work, the watch delivers from where it was, and the host is registered
// again.
func TestEtcdQuorumLost(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 3)
	cli := cluster.Client(t)
	prefix := uniquePrefix()
	s, log := openEtcd(t, cluster, prefix, func(c *EtcdConfig) {
		c.OpTimeout = time.Second
		c.LeaseTTL = 2 * time.Second
	})
	ctx := t.Context()
	if _, err := s.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := s.Watch(ctx, st.Revision+1)
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan error, 1)
	go func() { regDone <- s.Register(regCtx, Host{Name: "h1", UnderlayIP: netip.MustParseAddr("192.0.2.1")}) }()
	defer func() { stopReg(); <-regDone }()
	if got := describe(nextEvent(t, events, 5*time.Second)); got != "host h1: h1 192.0.2.1" {
		t.Fatalf("got %s", got)
	}

	cluster.Stop(1)
	cluster.Stop(2)
	start := time.Now()
	err = s.CreatePort(ctx, port("a", "blue", "10.1.0.5"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write without quorum: %v, want ErrUnavailable", err)
	}
	t.Logf("write without quorum: %v after %v", err, time.Since(start).Round(time.Millisecond))
	took := eventually(t, 15*time.Second, "watch lost and host lost", func() bool {
		return log.count("watch lost; resuming") == 1 && log.count("host registration lost; registering again") == 1
	})
	t.Logf("watch and lease lost %v after quorum was", took.Round(10*time.Millisecond))

	start = time.Now()
	cluster.StartAll()
	t.Logf("quorum back %v after starting the members", time.Since(start).Round(10*time.Millisecond))
	start = time.Now()
	eventually(t, 10*time.Second, "writes work again", func() bool {
		err := s.CreatePort(ctx, port("a", "blue", "10.1.0.5"))
		return err == nil || errors.Is(err, ErrExists)
	})
	t.Logf("first write %v after quorum was back", time.Since(start).Round(10*time.Millisecond))
	start = time.Now()
	seen := map[string]bool{}
	for !seen["port a: a 10.1.0.5 on h1 ofport 0"] || !seen["host h1: h1 192.0.2.1"] {
		e := describe(nextEvent(t, events, 10*time.Second))
		seen[e] = true
	}
	t.Logf("events after the outage, within %v: %v", time.Since(start).Round(10*time.Millisecond), seen)
	if hostLease(t, cli, prefix, "h1") == 0 {
		t.Error("host not registered again")
	}
	for msg, want := range map[string]int{
		"watch lost; resuming":                      1,
		"watch resumed":                             1,
		"host registration lost; registering again": 1,
		"host registered again":                     1,
		"cannot register host; retrying":            0,
	} {
		if n := log.count(msg); n != want {
			t.Errorf("logged %q %d times, want %d", msg, n, want)
		}
	}
}

// TestEtcdDeleteNetworkRace: a port created on one host while another
// deletes its network. Exactly one wins: the port (the delete names it), or
// the delete (the port's network is not found). Never a port without its
// network.
func TestEtcdDeleteNetworkRace(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	prefix := uniquePrefix()
	a, _ := openEtcd(t, cluster, prefix)
	b, _ := openEtcd(t, cluster, prefix)
	ctx := t.Context()
	outcomes := map[string]int{}
	for round := range 30 {
		if _, err := a.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
			t.Fatal(err)
		}
		var portErr, delErr error
		var wg sync.WaitGroup
		wg.Go(func() { portErr = a.CreatePort(ctx, port("p", "blue", "10.1.0.5")) })
		wg.Go(func() { delErr = b.DeleteNetwork(ctx, "blue") })
		wg.Wait()
		switch {
		case portErr == nil && errors.Is(delErr, ErrConflict) && delErr.Error() == `conflict: network "blue" is used by ports p`:
			outcomes["port won"]++
			if err := b.DeletePort(ctx, "p"); err != nil {
				t.Fatal(err)
			}
			if err := b.DeleteNetwork(ctx, "blue"); err != nil {
				t.Fatal(err)
			}
		case delErr == nil && errors.Is(portErr, ErrNotFound):
			outcomes["delete won"]++
		default:
			t.Fatalf("round %d: create port: %v; delete network: %v", round, portErr, delErr)
		}
		st, err := a.Load(ctx)
		if err != nil || len(st.Networks)+len(st.Ports) != 0 {
			t.Fatalf("round %d: left %+v %v", round, st, err)
		}
	}
	t.Logf("30 rounds: %v", outcomes)
}

package store

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// Outages: members down, quorum lost, etcd gone. Calls fail with
// ErrUnavailable meanwhile; afterwards everything goes on by itself.

// writeEventually retries a write until it succeeds; ErrExists counts as
// success, since a try that failed for want of etcd may have been applied.
func writeEventually(t *testing.T, what string, write func() error) {
	t.Helper()
	var last error
	eventually(t, patience, what, func() bool {
		last = write()
		if last != nil && !errors.Is(last, ErrUnavailable) && !errors.Is(last, ErrExists) {
			t.Fatalf("%s: %v", what, last)
		}
		return last == nil || errors.Is(last, ErrExists)
	})
}

// TestEtcdOutage: with its only member down, every call fails with
// ErrUnavailable, bounded by OpTimeout; once it is back, writes work again
// and a watch opened before the outage goes on, without the caller doing
// anything.
func TestEtcdOutage(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	prefix := uniquePrefix()
	const opTimeout = time.Second
	setup, _ := openEtcd(t, cluster, prefix)
	s, log := openEtcd(t, cluster, prefix, func(c *EtcdConfig) { c.OpTimeout = opTimeout })
	ctx := t.Context()
	events := blueAndWatch(t, setup, s)

	cluster.Stop(0)
	var wg sync.WaitGroup
	for _, c := range []struct {
		name string
		do   func() error
	}{
		{"create port", func() error { return s.CreatePort(ctx, port("a", "blue", "10.1.0.5")) }},
		{"create network", func() error { _, _, err := s.CreateNetwork(ctx, network("red", "10.2.0.0/24")); return err }},
		{"delete port", func() error { return s.DeletePort(ctx, "a", "h1") }},
		{"update port", func() error { return s.UpdatePort(ctx, port("a", "blue", "10.1.0.5")) }},
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
			// Bounded, not fast: this only catches a call that waits for
			// etcd to come back.
			if took > opTimeout+patience/2 {
				t.Errorf("%s took %v, OpTimeout is %v", c.name, took, opTimeout)
			}
		})
	}
	wg.Wait()
	start := time.Now()
	_, err := OpenEtcd(ctx, EtcdConfig{Endpoints: cluster.Endpoints(), OpTimeout: opTimeout})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("open with etcd down: %v, want ErrUnavailable", err)
	}
	t.Logf("open with etcd down: %v after %v", err, time.Since(start).Round(time.Millisecond))

	cluster.Start(0)
	start = time.Now()
	writeEventually(t, "writes work again", func() error { return s.CreatePort(ctx, port("a", "blue", "10.1.0.5")) })
	t.Logf("first write succeeded %v after the member was started", time.Since(start).Round(10*time.Millisecond))
	if got := describe(nextEvent(t, events)); got != "port a: a 10.1.0.5 on h1 ofport 0" {
		t.Fatalf("after the outage: %s", got)
	}
	t.Logf("watch log lines: lost %d, resumed %d", logCount(log, "watch lost; resuming"), logCount(log, "watch resumed"))
}

// TestEtcdMemberDown: a 3-member cluster with one member killed — a
// follower, then the leader — takes writes again (at once, or after
// electing a leader), from a client that knows all three, and the watch
// goes on.
func TestEtcdMemberDown(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 3)
	cli := cluster.Client(t)
	// The daemon's OpTimeout: a write stuck on the dead leader is sent
	// again once another is elected, rather than waiting for etcd's answer.
	s, _ := openEtcd(t, cluster, uniquePrefix(), func(c *EtcdConfig) { c.OpTimeout = DefaultOpTimeout })
	ctx := t.Context()
	writeEventually(t, "create network", func() error {
		_, _, err := s.CreateNetwork(ctx, network("blue", "10.1.0.0/24"))
		return err
	})
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := s.Watch(ctx, st.Revision+1)
	leader := func() (i int) {
		eventually(t, patience, "a leader", func() bool {
			for i = range cluster.Endpoints() {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				st, err := cli.Status(ctx, cluster.Endpoints()[i])
				cancel()
				if err == nil && st.Leader == st.Header.MemberId {
					return true
				}
			}
			return false
		})
		return i
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
		writeEventually(t, role+" down: create port", func() error { return s.CreatePort(ctx, p) })
		t.Logf("%s (member %d) down: write took %v", role, victim, time.Since(start).Round(time.Millisecond))
		if got := describe(nextEvent(t, events)); !strings.HasPrefix(got, "port "+p.Name+":") {
			t.Fatalf("%s down: event %s", role, got)
		}
		cluster.Start(victim)
	}
}

// TestEtcdQuorumLost: two of three members down. Writes fail with
// ErrUnavailable; the remaining member ends the watch (no leader) and the
// store keeps opening it again; the host's lease runs out. With the
// members back, without the caller doing anything, writes work, the watch
// delivers from where it was, and the host is registered again.
func TestEtcdQuorumLost(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 3)
	cli := cluster.Client(t)
	prefix := uniquePrefix()
	setup, _ := openEtcd(t, cluster, prefix)
	s, log := openEtcd(t, cluster, prefix, func(c *EtcdConfig) {
		c.OpTimeout = 2 * time.Second
		c.LeaseTTL = 2 * time.Second
	})
	ctx := t.Context()
	events := blueAndWatch(t, setup, s)
	register(t, s, Host{Name: "h1", UnderlayIP: netip.MustParseAddr("192.0.2.1")})
	if got := describe(nextEvent(t, events)); got != "host h1: h1 192.0.2.1" {
		t.Fatalf("got %s", got)
	}
	// Registered, as Register sees it: keeping its lease alive.
	waitRegistered(t, log, 1)

	failed := logCount(log, "cannot register host; retrying")
	cluster.Stop(1)
	cluster.Stop(2)
	start := time.Now()
	err := s.CreatePort(ctx, port("a", "blue", "10.1.0.5"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write without quorum: %v, want ErrUnavailable", err)
	}
	t.Logf("write without quorum: %v after %v", err, time.Since(start).Round(time.Millisecond))
	// Both happen while the outage lasts, however long they take: the
	// watch ends (no leader), and no keepalive is answered for a TTL.
	took := eventually(t, patience, "watch lost and host lost", func() bool {
		return logCount(log, "watch lost; resuming")+logCount(log, "watch closed; resuming") >= 1 &&
			logCount(log, "host registration lost; registering again") >= 1
	})
	t.Logf("watch and lease lost %v after quorum was", took.Round(10*time.Millisecond))

	start = time.Now()
	cluster.StartAll()
	t.Logf("quorum back %v after starting the members", time.Since(start).Round(10*time.Millisecond))
	start = time.Now()
	writeEventually(t, "writes work again", func() error { return s.CreatePort(ctx, port("a", "blue", "10.1.0.5")) })
	t.Logf("first write %v after quorum was back", time.Since(start).Round(10*time.Millisecond))
	start = time.Now()
	seen := map[string]bool{}
	for !seen["port a: a 10.1.0.5 on h1 ofport 0"] || !seen["host h1: h1 192.0.2.1"] {
		seen[describe(nextEvent(t, events))] = true
	}
	t.Logf("events after the outage, within %v: %v", time.Since(start).Round(10*time.Millisecond), seen)
	eventually(t, patience, "host registered again", func() bool {
		return hostLease(t, cli, prefix, "h1") != 0 && logCount(log, "host registered again") >= 1
	})
	eventually(t, patience, "watch resumed", func() bool { return logCount(log, "watch resumed") >= 1 })
	// Once lost, the registration retries quietly until it is back.
	if n := logCount(log, "cannot register host; retrying") - failed; n != 0 {
		t.Errorf("logged %q %d times during the outage, want 0", "cannot register host; retrying", n)
	}
}

// blueAndWatch creates network blue through setup and watches s from then on.
func blueAndWatch(t *testing.T, setup, s *Etcd) <-chan Event {
	t.Helper()
	if _, _, err := setup.CreateNetwork(t.Context(), network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	st, err := setup.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s.Watch(t.Context(), st.Revision+1)
}

// TestWaitEtcd: a daemon started while etcd is down waits for it, saying
// so, and has its store once etcd is up; a stop ends the wait.
func TestWaitEtcd(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	cluster.Stop(0)
	log, buf := newLog(t)
	cfg := EtcdConfig{Endpoints: cluster.Endpoints(), Prefix: uniquePrefix(), Log: log, OpTimeout: time.Second}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := WaitEtcd(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitEtcd stopped: %v, want context.Canceled", err)
	}

	opened := make(chan error, 1)
	go func() {
		s, err := WaitEtcd(t.Context(), cfg)
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	// Until a retry is logged WaitEtcd must not return: if it does, its
	// error says why it gave up on a stopped etcd.
	for waited := time.Duration(0); logCount(buf, "etcd unreachable; retrying") == 0; waited += 50 * time.Millisecond {
		select {
		case err := <-opened:
			t.Fatalf("WaitEtcd returned while etcd was down: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if waited > patience {
			t.Fatalf("no retry logged within %s", patience)
		}
	}
	cluster.Start(0)
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("WaitEtcd: %v", err)
		}
	case <-time.After(patience):
		t.Fatal("WaitEtcd did not return once etcd was up")
	}
}

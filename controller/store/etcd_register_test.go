package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// Hosts: records on leases, kept alive, written again when lost, never
// taken from another daemon.

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

// leaseGone tells whether a lease has expired or was revoked.
func leaseGone(t *testing.T, cli *clientv3.Client, lease clientv3.LeaseID) bool {
	t.Helper()
	resp, err := cli.TimeToLive(t.Context(), lease)
	if err != nil {
		t.Fatal(err)
	}
	return resp.TTL <= 0
}

// waitRegistered waits until Register has logged that it holds its record,
// for the nth time: only then is the record's lease the one it keeps alive.
// (The record itself may be seen before: a write that etcd applied but
// answered too late is written again.)
func waitRegistered(t *testing.T, log *testbed.SyncBuffer, n int) {
	t.Helper()
	eventually(t, patience, fmt.Sprintf("registered (%d)", n), func() bool {
		return logCount(log, "host registered")+logCount(log, "host registered again") >= n
	})
}

// registration is one Register running in the background, as a daemon's.
type registration struct {
	stop func()
	done chan error
}

func register(t *testing.T, s *Etcd, h Host) *registration {
	ctx, cancel := context.WithCancel(t.Context())
	r := &registration{stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Register(ctx, h, nil) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// end stops the registration, as a daemon's shutdown does, and returns what
// Register returned.
func (r *registration) end(t *testing.T) error {
	t.Helper()
	r.stop()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(patience):
		t.Fatal("Register did not return")
		return nil
	}
}

// TestEtcdRegister: a record on a lease; a revoked lease is replaced (and
// logged); a restarted daemon's record moves to its new lease, so the old
// lease expiring does not take it away; when Register ends the record
// stays until its lease runs out.
func TestEtcdRegister(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	cli := cluster.Client(t)
	prefix := uniquePrefix()
	// Long enough that a lease kept alive every TTL/3 does not run out
	// on a loaded machine between two looks at it.
	const ttl = 4 * time.Second
	s, log := openEtcd(t, cluster, prefix, func(c *EtcdConfig) { c.LeaseTTL = ttl })
	h := Host{Name: "h1", UnderlayIP: netip.MustParseAddr("192.0.2.1")}

	reg := register(t, s, h)
	waitRegistered(t, log, 1)
	first := hostLease(t, cli, prefix, "h1")
	failed := logCount(log, "cannot register host; retrying") // none, unless etcd was slow to answer
	if _, err := cli.Revoke(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	var second clientv3.LeaseID
	took := eventually(t, patience, "registered again after revoke", func() bool {
		second = hostLease(t, cli, prefix, "h1")
		return second != 0 && second != first
	})
	t.Logf("re-registered %v after the lease was revoked", took.Round(10*time.Millisecond))
	// The line follows the write: wait for it, not the write.
	eventually(t, patience, "loss and return logged", func() bool {
		return logCount(log, "host registration lost; registering again") >= 1 && logCount(log, "host registered again") >= 1
	})

	// A daemon restart: Register ends without revoking, another begins.
	waitRegistered(t, log, 2)
	held := hostLease(t, cli, prefix, "h1")
	if err := reg.end(t); err != nil {
		t.Fatalf("register: %v", err)
	}
	if held == 0 || leaseGone(t, cli, held) {
		t.Fatalf("Register revoked its lease %x on return", held)
	}
	reg = register(t, s, h)
	eventually(t, patience, "registered on a new lease", func() bool {
		l := hostLease(t, cli, prefix, "h1")
		return l != 0 && l != held
	})
	// The old lease expires, and the record stays: it is on the new one.
	eventually(t, patience, "old lease expired", func() bool { return leaseGone(t, cli, held) })
	eventually(t, patience, "record on a live lease", func() bool {
		l := hostLease(t, cli, prefix, "h1")
		return l != 0 && l != held
	})

	// Gone for good: the record goes with its lease.
	if err := reg.end(t); err != nil {
		t.Fatalf("register: %v", err)
	}
	took = eventually(t, patience, "record expires", func() bool { return hostLease(t, cli, prefix, "h1") == 0 })
	t.Logf("record gone %v after Register returned (TTL %v)", took.Round(10*time.Millisecond), ttl)
	// A lost registration is logged as such, not as failures to register.
	if n := logCount(log, "cannot register host; retrying") - failed; n != 0 {
		t.Errorf("logged a failure to register %d times", n)
	}
}

// TestEtcdRegisterConflict: a live record of another daemon (same name,
// another underlay address) is not taken over — not at the start, not
// when registering again after a loss; Register returns ErrConflict. The
// same record (a restart within the lease) is taken over, and once the
// other's record has expired, its name is free.
func TestEtcdRegisterConflict(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	cli := cluster.Client(t)
	prefix := uniquePrefix()
	// No lease has to run out here: long enough that none does by chance
	// (a lease is kept alive every TTL/3, which is also how long a revoked
	// one can take to be noticed).
	const ttl = 10 * time.Second
	a, logA := openEtcd(t, cluster, prefix, func(c *EtcdConfig) { c.LeaseTTL = ttl })
	b, logB := openEtcd(t, cluster, prefix, func(c *EtcdConfig) { c.LeaseTTL = ttl })
	// registerOnce is a Register that must be refused: should it not be,
	// it would hold on until ctx ends.
	registerOnce := func(s *Etcd, h Host) error {
		ctx, cancel := context.WithTimeout(t.Context(), patience)
		defer cancel()
		return s.Register(ctx, h, nil)
	}
	h1 := Host{Name: "h1", UnderlayIP: netip.MustParseAddr("192.0.2.1")}
	impostor := Host{Name: "h1", UnderlayIP: netip.MustParseAddr("192.0.2.2")}
	const taken = `conflict: host "h1" is live with underlay 192.0.2.1 (another daemon with the same --host-name?)`

	regA := register(t, a, h1)
	waitRegistered(t, logA, 1)
	leaseA := hostLease(t, cli, prefix, "h1")
	if err := registerOnce(b, impostor); !errors.Is(err, ErrConflict) || err.Error() != taken {
		t.Fatalf("another daemon's name: %v, want %q", err, taken)
	}
	if got := hostLease(t, cli, prefix, "h1"); got != leaseA {
		t.Fatalf("after the refusal the record is on lease %x, want a's %x", got, leaseA)
	}

	// a stops; its record lives on. The same host again (a restart) takes
	// it over; another does not.
	if err := regA.end(t); err != nil {
		t.Fatal(err)
	}
	if err := registerOnce(b, impostor); !errors.Is(err, ErrConflict) {
		t.Fatalf("a stopped, its record live: %v, want ErrConflict", err)
	}
	regB := register(t, b, h1)
	waitRegistered(t, logB, 1)
	leaseB := hostLease(t, cli, prefix, "h1")
	if leaseB == leaseA {
		t.Fatal("b registered h1 on a's lease")
	}

	// While b's lease is lost, someone else writes the record: b does not
	// write over it when it registers again.
	other, _ := json.Marshal(Host{Name: "h1", UnderlayIP: netip.MustParseAddr("192.0.2.3")})
	if _, err := cli.Put(t.Context(), prefix+"/v1/hosts/h1", string(other)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(t.Context(), leaseB); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-regB.done:
		regB.done <- err
		want := `conflict: host "h1" is live with underlay 192.0.2.3 (another daemon with the same --host-name?)`
		if !errors.Is(err, ErrConflict) || err.Error() != want {
			t.Fatalf("registering again: %v, want %q", err, want)
		}
	case <-time.After(patience):
		t.Fatal("Register went on after its record was taken")
	}

	// Once the other record is gone (deleted here; expired, for a lease),
	// the name is free.
	if _, err := cli.Delete(t.Context(), prefix+"/v1/hosts/h1"); err != nil {
		t.Fatal(err)
	}
	register(t, a, impostor)
	eventually(t, patience, "registered with another underlay", func() bool {
		resp, err := cli.Get(t.Context(), prefix+"/v1/hosts/h1")
		return err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == `{"name":"h1","underlay_ip":"192.0.2.2"}`
	})

	// What cannot be a host fails at once.
	for _, h := range []Host{{Name: "a/b", UnderlayIP: h1.UnderlayIP}, {Name: "h2"}} {
		if err := a.Register(t.Context(), h, nil); err == nil {
			t.Errorf("registered %+v", h)
		} else if h.Name == "a/b" && !errors.Is(err, v1.ErrInvalid) {
			t.Errorf("register %+v: %v, want ErrInvalid", h, err)
		}
	}
}

package ovsdb

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// lockOpts are short timings for the tests; lost, when given, receives
// what Lost is told.
func lockOpts(lost chan<- error) LockOptions {
	o := LockOptions{Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		keepalive: 100 * time.Millisecond, queueWait: 2 * time.Second}
	if lost != nil {
		o.Lost = func(err error) { lost <- err }
	}
	return o
}

// refusedLock waits until a newcomer is refused bridge's lock: until
// someone else holds it. A newcomer that gets it lets go at once.
func refusedLock(t *testing.T, endpoint, bridge string) {
	t.Helper()
	opts := lockOpts(nil)
	opts.queueWait = 200 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := LockBridge(testContext(t), endpoint, bridge, opts)
		if errors.Is(err, ErrBridgeLocked) {
			return
		}
		l.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a newcomer's lock of %s: %v, want ErrBridgeLocked", bridge, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBridgeLock: a bridge's lock is one session's; another bridge's is
// not in its way; Close hands it on, also to a session queued for it;
// after ovsdb-server restarts, the holder takes it again, and a newcomer
// is still refused.
func TestBridgeLock(t *testing.T) {
	s := sb
	ctx := testContext(t)
	notLost := make(chan error, 1)
	opts := lockOpts(notLost)
	opts.queueWait = 10 * time.Second
	first, err := LockBridge(ctx, s.endpoint(), "br-lock", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	refusedLock(t, s.endpoint(), "br-lock")
	other, err := LockBridge(ctx, s.endpoint(), "br-lock2", lockOpts(nil))
	if err != nil {
		t.Fatalf("lock of another bridge: %v", err)
	}
	// A start queued behind a holder that goes away gets the lock.
	queued := make(chan error, 1)
	var said testbed.SyncBuffer
	qopts := opts
	qopts.Log = slog.New(slog.NewTextHandler(&said, nil))
	go func() {
		l, err := LockBridge(ctx, s.endpoint(), "br-lock2", qopts)
		l.Close()
		queued <- err
	}()
	waitFor(t, "the newcomer queued", func() bool { return strings.Contains(said.String(), "the bridge lock is taken; waiting for it") })
	other.Close()
	if err := <-queued; err != nil {
		t.Fatalf("lock of br-lock2 queued behind a holder that closed: %v", err)
	}

	if err := s.stopDB(); err != nil {
		t.Fatal(err)
	}
	if err := s.startDB(); err != nil {
		t.Fatal(err)
	}
	// The holder takes it again on its own (it retries every 2 s at most).
	refusedLock(t, s.endpoint(), "br-lock")
	first.Close()
	select {
	case err := <-notLost:
		t.Fatalf("the holder was told it lost the lock: %v", err)
	default:
	}
}

// TestBridgeLockLost: a holder whose lock another session has taken is
// told so (Lost), rather than carry on beside the new holder — after an
// ovsdb-server restart that another daemon was quicker to see, when its
// session went silent and the server freed the lock, and when the lock
// was stolen. A silent session that nobody overtook is made anew, and the
// lock held again.
func TestBridgeLockLost(t *testing.T) {
	s := sb
	wantLost := func(t *testing.T, lost <-chan error, want error) {
		t.Helper()
		select {
		case err := <-lost:
			if !errors.Is(err, want) {
				t.Fatalf("Lost told %v, want %v", err, want)
			}
			t.Logf("lost: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the holder was not told it lost the lock")
		}
	}
	t.Run("restart", func(t *testing.T) {
		p := newProxy(t, s.path("db.sock"))
		lost := make(chan error, 1)
		a, err := LockBridge(testContext(t), p.endpoint(), "br-lost1", lockOpts(lost))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		// The holder cannot reach the restarted server until another
		// daemon has the lock.
		p.setRefuse(true)
		p.cut(false)
		if err := s.stopDB(); err != nil {
			t.Fatal(err)
		}
		if err := s.startDB(); err != nil {
			t.Fatal(err)
		}
		b, err := LockBridge(testContext(t), s.endpoint(), "br-lost1", lockOpts(nil))
		if err != nil {
			t.Fatalf("a newcomer after the restart: %v", err)
		}
		defer b.Close()
		p.setRefuse(false)
		wantLost(t, lost, ErrBridgeLocked)
		a.Close()
		refusedLock(t, s.endpoint(), "br-lost1") // b still holds it
	})
	t.Run("silent", func(t *testing.T) {
		p := newProxy(t, s.path("db.sock"))
		lost := make(chan error, 1)
		a, err := LockBridge(testContext(t), p.endpoint(), "br-lost2", lockOpts(lost))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		// The server sees the session end, the holder sees nothing.
		p.cut(true)
		waitFor(t, "the holder's new session", func() bool { return p.accepted() >= 2 })
		refusedLock(t, s.endpoint(), "br-lost2") // the holder has it again
		select {
		case err := <-lost:
			t.Fatalf("a holder that took the lock again was told it lost it: %v", err)
		default:
		}

		// The same, but another daemon takes the lock first.
		p.setRefuse(true)
		p.cut(true)
		b, err := LockBridge(testContext(t), s.endpoint(), "br-lost2", lockOpts(nil))
		if err != nil {
			t.Fatalf("a newcomer while the holder's session is silent: %v", err)
		}
		defer b.Close()
		p.setRefuse(false)
		wantLost(t, lost, ErrBridgeLocked)
	})
	t.Run("stolen", func(t *testing.T) {
		lost := make(chan error, 1)
		a, err := LockBridge(testContext(t), s.endpoint(), "br-lost3", lockOpts(lost))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		steal(t, s.endpoint(), "br-lost3")
		wantLost(t, lost, errStolen)
	})
}

// steal takes bridge's lock with OVSDB's steal, as no daemon does, and
// holds it until the test ends.
func steal(t *testing.T, endpoint, bridge string) {
	t.Helper()
	ctx := testContext(t)
	sess, err := dialSession(ctx, endpoint, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.close)
	params, _ := json.Marshal([]string{"ovs_vnet_" + hex.EncodeToString([]byte(bridge))})
	if err := sess.send(rpc{ID: "steal", Method: "steal", Params: params}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := sess.next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID == "steal" {
			if !strings.Contains(string(m.Result), `"locked":true`) {
				t.Fatalf("steal: %s %s", m.Result, m.Error)
			}
			return
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
	}
}

// proxy stands between a lock's tcp: session and ovsdb-server's unix
// socket, to cut sessions: loudly (both sides closed, as a restart does)
// or silently (only the server's side, as a dead network path that the
// server's inactivity probe notices and the client does not).
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	refuse   bool
	conns    [][2]net.Conn // client side, server side
	n        int
}

func newProxy(t *testing.T, upstream string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream}
	t.Cleanup(func() {
		ln.Close()
		p.cut(false)
	})
	go p.serve()
	return p
}

func (p *proxy) endpoint() string { return "tcp:" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.n++
		var u net.Conn
		if !p.refuse {
			u, err = net.DialTimeout("unix", p.upstream, 5*time.Second)
		}
		if p.refuse || err != nil {
			c.Close()
			p.mu.Unlock()
			continue
		}
		p.conns = append(p.conns, [2]net.Conn{c, u})
		p.mu.Unlock()
		// Neither copy closes the other side: cut decides.
		go func() { _, _ = io.Copy(u, c) }()
		go func() { _, _ = io.Copy(c, u) }()
	}
}

func (p *proxy) setRefuse(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = refuse
}

func (p *proxy) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// cut ends the sessions through the proxy; silently, the client's side is
// left open and mute.
func (p *proxy) cut(silently bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c[1].Close()
		if !silently {
			c[0].Close()
		}
	}
	if !silently {
		p.conns = nil
	}
}

// TestBridgeOwnerRecord: the daemon's record on the bridge is one external
// ID among others: writing it keeps the others, and a bridge update (a
// restart with other flags) keeps it.
func TestBridgeOwnerRecord(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const name = "br-owner"
	delBridge(t, s, name)
	spec := BridgeSpec{Name: name, DatapathType: "netdev", FailMode: "secure", Protocols: []string{"OpenFlow13"}}
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := c.BridgeOwner(name); got != "" {
		t.Fatalf("record of a new bridge: %q", got)
	}
	s.mustVsctl(t, "set", "bridge", name, "external_ids:theirs=kept")
	for _, rec := range []string{"pid 1", "pid 2"} {
		if err := c.SetBridgeOwner(ctx, name, rec); err != nil {
			t.Fatal(err)
		}
		wantVsctl(t, s, rec, "get", "bridge", name, "external_ids:"+DaemonKey)
	}
	spec.FailMode, spec.Protocols, spec.Controllers = "standalone", []string{"OpenFlow10", "OpenFlow13"}, []string{"tcp:127.0.0.1:6653"}
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	wantVsctl(t, s, "standalone", "get", "bridge", name, "fail_mode")
	wantVsctl(t, s, "pid 2", "get", "bridge", name, "external_ids:"+DaemonKey)
	wantVsctl(t, s, "kept", "get", "bridge", name, "external_ids:theirs")
	wantVsctl(t, s, "ovs-vnet", "get", "bridge", name, "external_ids:"+OwnerKey)
	if got := c.BridgeOwner(name); got != "pid 2" {
		t.Fatalf("BridgeOwner: %q, want pid 2", got)
	}
}

package ovsdb

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDeleteAfterStalledAdd: an AddPort whose caller gives up while
// ovsdb-server is stopped is still carried out when the server resumes;
// a DeletePort of that port made meanwhile, though the cache shows no
// port to delete, runs after it and removes it. ovs-vsctl is the witness.
func TestDeleteAfterStalledAdd(t *testing.T) {
	s := sb
	c := dial(t, s)
	const br, name, later = "br-stall", "vnt-stalled", "vnt-later"
	ensureTestBridge(t, s, c, br)

	resume := s.pauseDB(t)
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if err := c.AddPort(short(), br, PortSpec{Name: name}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AddPort while ovsdb-server is stopped: %v, want a deadline error", err)
	}
	if err := c.DeletePort(short(), br, name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DeletePort while ovsdb-server is stopped: %v, want a deadline error", err)
	}
	resume()

	// Requests on one connection are answered in order: once a later one
	// is, the two before it have been carried out.
	if err := c.AddPort(testContext(t), br, PortSpec{Name: later}); err != nil {
		t.Fatal(err)
	}
	wantVsctl(t, s, later, "list-ports", br)
	if out, err := s.vsctl("get", "interface", name, "name"); err == nil {
		t.Fatalf("interface %s left in the database: %s", name, out)
	}
	for _, n := range []string{later, name} {
		if err := c.DeletePort(testContext(t), br, n); err != nil {
			t.Fatal(err)
		}
	}
	wantVsctl(t, s, "", "list-ports", br)
}

// TestDeletePortOnAnotherBridge: DeletePort takes a port off the bridge
// it names only; ours on another bridge stays, refused by ovsdb-server.
func TestDeletePortOnAnotherBridge(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const br, other, name = "br-del1", "br-del2", "vnt-elsewhere"
	ensureTestBridge(t, s, c, br)
	ensureTestBridge(t, s, c, other)
	if err := c.AddPort(ctx, other, PortSpec{Name: name}); err != nil {
		t.Fatal(err)
	}
	err := c.DeletePort(ctx, br, name)
	if err == nil || !strings.Contains(err.Error(), "referential integrity") {
		t.Fatalf("DeletePort of a port of another bridge: %v, want ovsdb-server's referential integrity error", err)
	}
	wantVsctl(t, s, name, "list-ports", other)
	if err := c.DeletePort(ctx, other, name); err != nil {
		t.Fatal(err)
	}
	wantVsctl(t, s, "", "list-ports", other)
}

// pauseDB stops ovsdb-server (SIGSTOP, by its own pid) and returns what
// resumes it; cleanup resumes it too, for a test that fails meanwhile.
func (s *sandbox) pauseDB(tb testing.TB) (resume func()) {
	tb.Helper()
	b, err := os.ReadFile(s.path("ovsdb-server.pid"))
	if err != nil {
		tb.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		tb.Fatal(err)
	}
	if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err != nil || strings.TrimSpace(string(comm)) != "ovsdb-server" {
		tb.Fatalf("pid %d of %s is not ovsdb-server: %q, %v", pid, s.path("ovsdb-server.pid"), comm, err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		tb.Fatal(err)
	}
	resume = func() {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			tb.Error(err)
		}
	}
	tb.Cleanup(resume)
	return resume
}

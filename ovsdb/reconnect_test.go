package ovsdb

import (
	"runtime"
	"testing"
	"time"
)

func TestReconnect(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const br, name = "br-recon", "vnt-r"
	ensureTestBridge(t, s, c, br)
	s.veth(t, name)

	if err := s.stopDB(); err != nil {
		t.Fatal(err)
	}
	// Whatever happens below, the other tests need the server back.
	t.Cleanup(func() {
		if !c.Connected() {
			if err := s.startDB(); err != nil {
				t.Error(err)
			}
		}
	})
	waitConnected(t, c, false)

	// A call made while the server is down waits for the reconnect.
	added := make(chan error, 1)
	go func() { added <- c.AddPort(ctx, br, PortSpec{Name: name, Tag: 7}) }()
	select {
	case err := <-added:
		t.Fatalf("AddPort returned while the server was down: %v", err)
	case <-time.After(300 * time.Millisecond):
	}

	if err := s.startDB(); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, c, true)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	ofport, err := c.WaitOfport(ctx, name)
	if err != nil || ofport <= 0 {
		t.Fatalf("WaitOfport after reconnect = %d, %v; want > 0", ofport, err)
	}
	wantVsctl(t, s, "7", "get", "port", name, "tag")
	if err := c.DeletePort(ctx, br, name); err != nil {
		t.Fatal(err)
	}
}

// TestCloseDuringOutage: Close while libovsdb waits to reconnect must end its
// reconnect loop, not leave a client that comes back when the server does.
func TestCloseDuringOutage(t *testing.T) {
	s := sb
	before := runtime.NumGoroutine()
	c, err := Dial(testContext(t), s.endpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.stopDB(); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, c, false)
	c.Close()
	if err := s.startDB(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after Close, %d before Dial", runtime.NumGoroutine(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c.Connected() {
		t.Fatal("closed client reconnected")
	}
}

func waitConnected(tb testing.TB, c *Client, want bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Connected() != want {
		if time.Now().After(deadline) {
			tb.Fatalf("Connected() did not become %v", want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

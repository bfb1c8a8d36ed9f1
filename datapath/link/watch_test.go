package link

import (
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestWatcher follows a namespace of the test's own: a link of ours
// changing and going are signalled, Link answers from a dump
// the events keep current, and Close leaves no goroutine behind.
func TestWatcher(t *testing.T) {
	ns := testbed.Netns(t, "vnt-watch-")
	before := runtime.NumGoroutine()
	var w *Watcher
	if err := testbed.InNetns(ns, func() (err error) {
		w, err = Watch(slog.New(slog.DiscardHandler))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	signalled := func(what string) {
		t.Helper()
		select {
		case <-w.Changed():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: Changed not signalled in 30 s", what)
		}
	}
	if l, err := w.Link("vnt-w", datapath.CheckHost); err != nil || l != nil {
		t.Fatalf("Link before it exists = %v, %v", l, err)
	}
	testbed.Run(t, "ip", "-n", ns, "link", "add", "vnt-w", "type", "veth", "peer", "name", "vnt-w-peer")
	// The kernel tells of an alias with the link's next change, not by
	// itself.
	testbed.Run(t, "ip", "-n", ns, "link", "set", "vnt-w", "alias", datapath.PortAlias("w"))
	testbed.Run(t, "ip", "-n", ns, "link", "set", "vnt-w", "up")
	signalled("link with our alias up")
	if l, err := w.Link("vnt-w", datapath.CheckAll); err != nil || l == nil || l.Attrs().Alias != datapath.PortAlias("w") {
		t.Fatalf("Link after the alias = %v, %v", l, err)
	}
	// The shared dump follows, within minDumpAge of the event; a dump
	// that predates it signals again meanwhile.
	waitLink(t, w, "vnt-w", true)
	select {
	case <-w.Changed():
	default:
	}
	testbed.Run(t, "ip", "-n", ns, "link", "del", "vnt-w")
	signalled("link deleted")
	if l, err := w.Link("vnt-w", datapath.CheckAll); err != nil || l != nil {
		t.Fatalf("Link after the delete = %v, %v", l, err)
	}
	waitLink(t, w, "vnt-w", false)
	w.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after Close, %d before Watch", runtime.NumGoroutine(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLink waits, bounded, until the shared dump shows name (or not).
func waitLink(t *testing.T, w *Watcher, name string, exists bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l, err := w.Link(name, datapath.CheckHost)
		if err != nil {
			t.Fatal(err)
		}
		if (l != nil) == exists {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dump never showed %s with exists=%v", name, exists)
		}
	}
}

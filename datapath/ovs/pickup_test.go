package ovs

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// TestPickupWindowEnds: the window closes by itself when its time is up
// (before the first Prune only the state changes, as with every change),
// a window opened again holds on for its whole length, and a closed
// backend opens none.
func TestPickupWindowEnds(t *testing.T) {
	b := &Backend{state: newState(), pickup: pickupClock{length: 50 * time.Millisecond}, log: slog.New(slog.DiscardHandler)}
	open := func() uint64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.state.pickup
	}
	b.openPickup(true)
	if open() == 0 {
		t.Fatal("openPickup left the window closed")
	}
	eventually(t, "the window closed when its time was up", func() bool { return open() == 0 })

	b.openPickup(true)
	first := open()
	b.openPickup(false)
	if second := open(); second == first || second == 0 {
		t.Fatalf("window %d opened again is %d", first, second)
	}
	// The first window's close, late, leaves the second open.
	if err := b.closePickup(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if open() == 0 {
		t.Error("closing an earlier window closed the one open")
	}
	eventually(t, "the second window closed", func() bool { return open() == 0 })

	b.stopPickup()
	b.openPickup(true)
	if open() != 0 {
		t.Error("a closed backend opened the window")
	}
}

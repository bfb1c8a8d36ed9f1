package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// revisionSteps are the writes that return their revision, with the
// object whose change each commits (kind "" when it writes nothing: the
// object is already as asked, or missing for a delete).
func revisionSteps() []struct {
	kind, name string
	do         func(context.Context, Store) (int64, error)
} {
	blue := network("blue", "10.1.0.0/24")
	return []struct {
		kind, name string
		do         func(context.Context, Store) (int64, error)
	}{
		{KindNetwork, "blue", func(ctx context.Context, s Store) (int64, error) {
			_, rev, err := s.CreateNetwork(ctx, blue)
			return rev, err
		}},
		{KindNetwork, "blue", func(ctx context.Context, s Store) (int64, error) {
			return s.UpdateNetwork(ctx, withDNS(blue, 1, true, "", "10.1.0.53"))
		}},
		{"", "", func(ctx context.Context, s Store) (int64, error) {
			return s.UpdateNetwork(ctx, withDNS(blue, 1, true, "", "10.1.0.53"))
		}},
		{KindSecurityGroup, "web", func(ctx context.Context, s Store) (int64, error) {
			_, _, rev, err := s.PutSecurityGroup(ctx, group("web"))
			return rev, err
		}},
		{KindSecurityGroup, "web", func(ctx context.Context, s Store) (int64, error) {
			_, _, rev, err := s.PutSecurityGroup(ctx, group("web", "web"))
			return rev, err
		}},
		{KindRouter, "r1", func(ctx context.Context, s Store) (int64, error) {
			if _, _, err := s.CreateNetwork(ctx, network("red", "10.2.0.0/24")); err != nil {
				return 0, err
			}
			_, rev, err := s.PutRouter(ctx, router("r1", 1, "blue", "red"))
			return rev, err
		}},
		{KindRouter, "r1", func(ctx context.Context, s Store) (int64, error) { return s.DeleteRouter(ctx, "r1") }},
		{"", "", func(ctx context.Context, s Store) (int64, error) { return s.DeleteRouter(ctx, "r1") }},
		{KindFloatingIP, "pub", func(ctx context.Context, s Store) (int64, error) {
			if err := s.CreatePort(ctx, port("p1", "blue", "10.1.0.5")); err != nil {
				return 0, err
			}
			return s.PutFloatingIP(ctx, fip("pub", "203.0.113.5", "p1"))
		}},
		{KindPortForward, "web", func(ctx context.Context, s Store) (int64, error) {
			return s.PutPortForward(ctx, fwd("web", "tcp/8080", "p1"))
		}},
		{KindFloatingIP, "pub", func(ctx context.Context, s Store) (int64, error) { return s.DeleteFloatingIP(ctx, "pub") }},
		{"", "", func(ctx context.Context, s Store) (int64, error) { return s.DeleteFloatingIP(ctx, "pub") }},
		{KindPortForward, "web", func(ctx context.Context, s Store) (int64, error) { return s.DeletePortForward(ctx, "web") }},
		{"", "", func(ctx context.Context, s Store) (int64, error) { return s.DeletePortForward(ctx, "web") }},
		{KindSecurityGroup, "web", func(ctx context.Context, s Store) (int64, error) { return s.DeleteSecurityGroup(ctx, "web") }},
		{"", "", func(ctx context.Context, s Store) (int64, error) { return s.DeleteSecurityGroup(ctx, "web") }},
		{KindNetwork, "blue", func(ctx context.Context, s Store) (int64, error) {
			if err := s.DeletePort(ctx, "p1", "h1"); err != nil {
				return 0, err
			}
			return s.DeleteNetwork(ctx, "blue")
		}},
		{"", "", func(ctx context.Context, s Store) (int64, error) { return s.DeleteNetwork(ctx, "blue") }},
	}
}

// TestEtcdWriteRevision: a write returns the revision the watch sends its
// change at (the controller skips the older changes of what it wrote by
// it); one that writes nothing returns 0 and sends nothing.
func TestEtcdWriteRevision(t *testing.T) {
	t.Parallel()
	s, _ := openEtcd(t, testbed.StartEtcd(t, 1), uniquePrefix())
	ctx := t.Context()
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := s.Watch(ctx, st.Revision+1)
	last := st.Revision
	for i, step := range revisionSteps() {
		rev, err := step.do(ctx, s)
		switch {
		case err != nil:
			t.Fatalf("step %d: %v", i, err)
		case step.kind == "" && rev != 0:
			t.Fatalf("step %d wrote nothing, but returned revision %d", i, rev)
		case step.kind == "":
			continue
		case rev <= last:
			t.Fatalf("step %d: revision %d, not after %d", i, rev, last)
		}
		last = rev
		// What a step writes first (network red, port p1 and its
		// delete) comes first.
		ev := nextEvent(t, events)
		for ev.Kind == KindPort || ev.Name == "red" {
			ev = nextEvent(t, events)
		}
		if ev.Kind != step.kind || ev.Name != step.name || ev.Revision != rev {
			t.Fatalf("step %d returned revision %d of %s %s; the watch sent %s %s at %d",
				i, rev, step.kind, step.name, ev.Kind, ev.Name, ev.Revision)
		}
	}
}

// TestBoltWriteRevision: Bolt has no watch, and its writes return 0.
func TestBoltWriteRevision(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i, step := range revisionSteps() {
		if rev, err := step.do(t.Context(), s); err != nil || rev != 0 {
			t.Fatalf("step %d: revision %d, %v; want 0", i, rev, err)
		}
	}
}

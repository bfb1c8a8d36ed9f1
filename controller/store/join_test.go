package store

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// registerFunc is a Cluster whose Register is a function; nothing else of
// it is called.
type registerFunc struct {
	Cluster
	register func(ctx context.Context, registered func()) error
}

func (r registerFunc) Register(ctx context.Context, _ Host, registered func()) error {
	return r.register(ctx, registered)
}

// TestJoin: Join returns once the host is live, fails when it cannot
// become live, and reports a registration that ends later on its own —
// but not one ended by ctx.
func TestJoin(t *testing.T) {
	h := Host{Name: "h1", UnderlayIP: netip.MustParseAddr("192.0.2.1")}
	errTaken := errors.New("host h1 is live elsewhere")

	t.Run("refused", func(t *testing.T) {
		cl := registerFunc{register: func(context.Context, func()) error { return errTaken }}
		err := Join(t.Context(), cl, h, func(err error) { t.Errorf("lost: %v", err) })
		if !errors.Is(err, errTaken) || !strings.Contains(err.Error(), "join the cluster as host h1") {
			t.Fatalf("Join = %v, want the refusal, wrapped", err)
		}
	})

	t.Run("lost later", func(t *testing.T) {
		end := make(chan struct{})
		cl := registerFunc{register: func(_ context.Context, registered func()) error {
			registered()
			<-end
			return errTaken
		}}
		lost := make(chan error, 1)
		if err := Join(t.Context(), cl, h, func(err error) { lost <- err }); err != nil {
			t.Fatal(err)
		}
		close(end)
		select {
		case err := <-lost:
			if !errors.Is(err, errTaken) || !strings.Contains(err.Error(), "host h1 left the cluster") {
				t.Fatalf("lost: %v", err)
			}
		case <-time.After(patience):
			t.Fatal("the end of the registration was not reported")
		}
	})

	t.Run("stopped", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		ended := make(chan struct{})
		cl := registerFunc{register: func(ctx context.Context, registered func()) error {
			defer close(ended)
			registered()
			<-ctx.Done()
			return ctx.Err()
		}}
		if err := Join(ctx, cl, h, func(err error) { t.Errorf("lost: %v", err) }); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-ended
	})

	t.Run("stopped before live", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		cl := registerFunc{register: func(ctx context.Context, _ func()) error {
			<-ctx.Done()
			return nil
		}}
		if err := Join(ctx, cl, h, func(err error) { t.Errorf("lost: %v", err) }); err != nil {
			t.Fatalf("Join = %v, want nil: the daemon is stopping", err)
		}
	})
}

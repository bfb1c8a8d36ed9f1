package controller_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// TestEmptyStateRefused: on a store with no network, a datapath holding a
// port or a network's objects is left alone and Run ends at once with
// ErrEmptyState, saying what the datapath holds; WithResetDataplane prunes
// them; a datapath holding nothing starts as usual.
func TestEmptyStateRefused(t *testing.T) {
	run := func(t *testing.T, fake datapath.Backend, opts ...controller.Option) error {
		t.Helper()
		st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		c, err := controller.New(st, "h1", slog.New(slog.NewTextHandler(io.Discard, nil)), controller.NewMetrics(prometheus.NewRegistry(), "t"), opts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx, func(context.Context) (datapath.Backend, error) { return fake, nil }) }()
		for {
			select {
			case err := <-done:
				return err
			case <-time.After(time.Millisecond):
			}
			if c.Ready() == nil {
				cancel()
				return <-done
			}
		}
	}
	held := func() *controllertest.Fake {
		f := controllertest.NewFake()
		f.Ports["a"], f.Networks["blue"] = true, true
		return f
	}

	fake := held()
	err := run(t, fake)
	if !errors.Is(err, controller.ErrEmptyState) || !strings.Contains(err.Error(), "ports a; network bridges blue") {
		t.Fatalf("Run: %v, want controller.ErrEmptyState naming what the datapath holds", err)
	}
	if !fake.Ports["a"] || !fake.Networks["blue"] || fake.Pruned.Networks != nil {
		t.Fatalf("refused start touched the datapath: ports %v, networks %v", fake.Ports, fake.Networks)
	}

	counted := &countPrunes{Fake: held()}
	if err := run(t, counted, controller.WithResetDataplane()); err != nil {
		t.Fatalf("Run with the reset: %v", err)
	}
	if counted.prunes.Load() == 0 {
		t.Fatal("the reset did not prune")
	}

	if err := run(t, controllertest.NewFake()); err != nil {
		t.Fatalf("Run on an empty datapath: %v", err)
	}
}

// countPrunes is the fake backend counting its Prunes.
type countPrunes struct {
	*controllertest.Fake
	prunes atomic.Int32
}

func (c *countPrunes) Prune(ctx context.Context, s datapath.State) error {
	c.prunes.Add(1)
	return c.Fake.Prune(ctx, s)
}

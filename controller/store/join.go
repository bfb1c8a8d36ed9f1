package store

import (
	"context"
	"fmt"
)

// Join registers h in cluster and returns once it is live, or why it cannot
// be; lost is told if its registration ends later for a reason of its own
// (another daemon took its name after a loss). The registration runs until
// ctx ends. A host joins before its controller reads the state: a daemon
// with another live daemon's name must not touch that host's ports.
func Join(ctx context.Context, cluster Cluster, h Host, lost func(error)) error {
	joined := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- cluster.Register(ctx, h, func() { close(joined) }) }()
	select {
	case <-joined:
		go func() {
			if err := <-done; err != nil && ctx.Err() == nil {
				lost(fmt.Errorf("host %s left the cluster: %w", h.Name, err))
			}
		}()
		return nil
	case err := <-done:
		if err != nil {
			return fmt.Errorf("join the cluster as host %s: %w", h.Name, err)
		}
		return nil // ctx ended first: the daemon is shutting down
	}
}

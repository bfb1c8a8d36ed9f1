package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/backend"
)

// TestExitStatus: the refusals a supervisor must tell apart exit with
// their own status, however deep they are wrapped, and so does the loss
// of the bridge joined to a clean stop's error.
func TestExitStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{emptyStateRefusal(config{stateDir: "/var/lib/x"}, stateFiles{}, fmt.Errorf("%w, but the datapath holds ports a", controller.ErrEmptyState)), exitNeedsOperator},
		{fmt.Errorf("state database /x %w: bad page", store.ErrDamaged), exitNeedsOperator},
		{fmt.Errorf("%w (pid 1)", backend.ErrLocked), exitTaken},
		{fmt.Errorf("bridge br-vnet is %w (pid 1): one daemon per bridge", datapath.ErrTaken), exitTaken},
		{errors.Join(fmt.Errorf("lost its lock; stopping (%w)", datapath.ErrTaken), nil), exitTaken},
		{errors.New("--listen: bad address"), 1},
	} {
		if got := exitStatus(c.err); got != c.want {
			t.Errorf("exitStatus(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

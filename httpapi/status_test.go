package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
)

// TestHTTPStatusTimeouts: a datapath that did not answer in time is 504,
// whether a context's deadline or a socket's passed; a client that went
// away is not reported as the datapath's timeout, and what says more
// precisely what failed keeps its own status.
func TestHTTPStatusTimeouts(t *testing.T) {
	sockTimeout := &net.OpError{Op: "read", Net: "unix", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("attach port p: ovsdb transaction: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{fmt.Errorf("flow bundle: %w", sockTimeout), http.StatusGatewayTimeout},
		{fmt.Errorf("attach port p: %w", context.Canceled), http.StatusInternalServerError},
		{errors.Join(fmt.Errorf("attach: %w", context.Canceled), fmt.Errorf("rollback: %w", context.DeadlineExceeded)), http.StatusInternalServerError},
		{fmt.Errorf("%w: %w", store.ErrUnavailable, context.DeadlineExceeded), http.StatusServiceUnavailable},
		{fmt.Errorf("%w: %w", v1.ErrInvalid, context.DeadlineExceeded), http.StatusBadRequest},
		{errors.New("write state: no space left on device"), http.StatusInternalServerError},
	} {
		if got := httpStatus(c.err); got != c.want {
			t.Errorf("%v: %d, want %d", c.err, got, c.want)
		}
	}
}

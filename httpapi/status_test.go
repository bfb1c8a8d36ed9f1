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

// TestKindFirst: every answer's message starts with its status's kind, once:
// taken from where wrapping put it (in the middle, or last), added when the
// message names none, and a message that starts with it is left alone.
func TestKindFirst(t *testing.T) {
	for _, c := range []struct {
		status    int
		msg, want string
	}{
		{409, `conflict: network "blue" exists with a different spec`, `conflict: network "blue" exists with a different spec`},
		{409, `port vm: conflict: interface vnt-t exists and is not ours (alias "")`, `conflict: port vm: interface vnt-t exists and is not ours (alias "")`},
		{409, `port vm: interface vnt-t exists and is not ours (alias ""): conflict`, `conflict: port vm: interface vnt-t exists and is not ours (alias "")`},
		{409, `port "a": already exists`, `conflict: port "a": already exists`},
		{404, `not found: port "a"`, `not found: port "a"`},
		{404, "no such endpoint: /v2", "not found: no such endpoint: /v2"},
		{400, "netns x: network namespace does not exist", "invalid: netns x: network namespace does not exist"},
		{503, "backend not ready", "backend not ready"},
		{503, "create port: state store unavailable: etcd: dial", "state store unavailable: create port: etcd: dial"},
		{504, "port a: ovsdb transaction: context deadline exceeded", "timeout: port a: ovsdb transaction: context deadline exceeded"},
		{500, "write state: no space left on device", "internal error: write state: no space left on device"},
		{401, "missing or wrong bearer token", "unauthorized: missing or wrong bearer token"},
		{405, "method not allowed: POST on /v1/ports", "method not allowed: POST on /v1/ports"},
	} {
		if got := kindFirst(c.status, c.msg); got != c.want {
			t.Errorf("%d %q: %q, want %q", c.status, c.msg, got, c.want)
		}
	}
}

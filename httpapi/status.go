package httpapi

import (
	"context"
	"errors"
	"net/http"
	"os"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// httpStatus maps an error from the controller or a backend to its status code.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, v1.ErrInvalid), errors.Is(err, datapath.ErrNoNetns):
		return http.StatusBadRequest
	case errors.Is(err, controller.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, controller.ErrConflict), errors.Is(err, datapath.ErrConflict),
		errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		return http.StatusConflict
	case errors.Is(err, controller.ErrUnsupported):
		return http.StatusNotImplemented
	case errors.Is(err, controller.ErrNotReady), errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable
	case timedOut(err):
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// timedOut reports whether the datapath (the backend, OVSDB, OpenFlow) did
// not answer in time: a deadline of its own or the request's passed, as a
// context's or a socket's. A client that goes away cancels the request
// instead; an error that carries that cancellation too is not a timeout
// of the datapath's, whatever else it carries.
func timedOut(err error) bool {
	return (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)) &&
		!errors.Is(err, context.Canceled)
}

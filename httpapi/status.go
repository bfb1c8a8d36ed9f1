package httpapi

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"

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

// kinds names the kind of failure status answers, the word its message
// starts with (docs/API.md, "Errors"); the first is the one given when the
// message names none. For the kinds of the controller's, the store's and the
// API's sentinels, the word is the sentinel's text.
func kinds(status int) []string {
	switch status {
	case http.StatusBadRequest:
		return []string{v1.ErrInvalid.Error()}
	case http.StatusUnauthorized:
		return []string{"unauthorized"}
	case http.StatusForbidden:
		return []string{"forbidden"}
	case http.StatusNotFound:
		return []string{controller.ErrNotFound.Error()}
	case http.StatusMethodNotAllowed:
		return []string{"method not allowed"}
	case http.StatusConflict:
		return []string{controller.ErrConflict.Error()}
	case http.StatusRequestEntityTooLarge:
		return []string{"too large"}
	case http.StatusNotImplemented:
		return []string{controller.ErrUnsupported.Error()}
	case http.StatusServiceUnavailable:
		return []string{controller.ErrNotReady.Error(), store.ErrUnavailable.Error()}
	case http.StatusGatewayTimeout:
		return []string{"timeout"}
	default:
		return []string{"internal error"}
	}
}

// kindFirst makes msg start with the kind of its status. Wrapping adds what
// was being done in front of a sentinel's text ("port a: conflict: …", or
// "…: conflict" from a sentinel wrapped last), so the kind is taken from
// where it stands and put first, once; a message that starts with its kind
// is left as it is.
func kindFirst(status int, msg string) string {
	ks := kinds(status)
	for _, k := range ks {
		if msg == k || strings.HasPrefix(msg, k+": ") {
			return msg
		}
	}
	for _, k := range ks {
		if rest, ok := strings.CutSuffix(msg, ": "+k); ok {
			return k + ": " + rest
		}
		if before, after, ok := strings.Cut(msg, ": "+k+": "); ok {
			return k + ": " + before + ": " + after
		}
	}
	return ks[0] + ": " + msg
}

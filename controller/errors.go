package controller

import (
	"errors"
	"net/http"

	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Kinds of failure a request can meet; the HTTP layer turns them into status
// codes. Their text starts the message a client sees.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrNotReady = errors.New("backend not ready")
)

// httpStatus maps an error from the controller or a backend to its status code.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, model.ErrInvalid), errors.Is(err, datapath.ErrNoNetns):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict), errors.Is(err, datapath.ErrConflict),
		errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		return http.StatusConflict
	case errors.Is(err, ErrUnsupported):
		return http.StatusNotImplemented
	case errors.Is(err, ErrNotReady), errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

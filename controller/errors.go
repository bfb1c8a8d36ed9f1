package controller

import (
	"errors"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// Kinds of failure a request can meet; the HTTP layer (httpapi) turns them
// into status codes. Their text starts the message a client sees.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrNotReady = errors.New("backend not ready")
	// ErrUnsupported: the connected backend cannot serve the request
	// (flows on the Linux backend); the backends' own, for what the host
	// cannot do as it is set up.
	ErrUnsupported = datapath.ErrUnsupported
)

package controller

import "errors"

// Kinds of failure a request can meet; the HTTP layer (httpapi) turns them
// into status codes. Their text starts the message a client sees.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrNotReady = errors.New("backend not ready")
	// ErrUnsupported: the connected backend cannot serve the request
	// (flows on the Linux backend).
	ErrUnsupported = errors.New("not supported")
)

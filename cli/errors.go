package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/ovs-vnet/ovs-vnet/client"
)

// Exit codes, for scripts (docs/CLI.md#exit-codes).
const (
	ExitOK           = 0
	ExitError        = 1 // anything else, including an invalid request (400)
	ExitUsage        = 2 // bad command, flag or argument; the usage is printed
	ExitNotFound     = 3 // 404: the object, or a network it names, does not exist
	ExitConflict     = 4 // 409: exists with another spec, in use, address taken…
	ExitUnavailable  = 5 // the daemon cannot be reached, did not answer in time, or is not ready (503), or its datapath did not answer in time (504)
	ExitUnauthorized = 6 // 401: missing or wrong token
	// ExitInterrupted is the shells' code for a command ended by SIGINT.
	ExitInterrupted = 130
)

// ExitCode maps a command's error to vnetctl's exit status.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var u usageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	switch client.StatusOf(err) {
	case 0:
	case http.StatusNotFound:
		return ExitNotFound
	case http.StatusConflict:
		return ExitConflict
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ExitUnavailable
	case http.StatusUnauthorized:
		return ExitUnauthorized
	default:
		return ExitError
	}
	if errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	if unreachable(err) {
		return ExitUnavailable
	}
	return ExitError
}

// unreachable tells a daemon that cannot be reached or did not answer in time
// from everything else that fails before an answer. A server whose
// certificate we refuse is reachable: that is a configuration error.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the user stopped vnetctl; the daemon did nothing wrong
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		return false
	}
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return !errors.As(err, &verify) && !errors.As(err, &unknown) && !errors.As(err, &hostname) && !errors.As(err, &invalid)
}

// errorMessage is what the user reads after "Error: ". A daemon's answer is
// quoted as the daemon wrote it; a transport failure says where vnetctl tried.
func errorMessage(err error, server string, timeout fmt.Stringer) string {
	if errors.Is(err, context.Canceled) && client.StatusOf(err) == 0 {
		return "interrupted (a change already sent may still take effect: check with get or list)"
	}
	if client.StatusOf(err) != 0 || !unreachable(err) {
		return err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("ovs-vnet at %s did not answer within %s (--timeout)", server, timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the dial error; the URL is ours, not the user's
	}
	return fmt.Sprintf("cannot reach ovs-vnet at %s: %v (is it running? see --server, $%s)", server, err, EnvServer)
}

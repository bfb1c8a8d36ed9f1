package cni

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovs-vnet/ovs-vnet/client"
)

// daemonError turns a failed call to the daemon into the CNI error a runtime
// can act on, keeping the daemon's own message: code 11 (try again later)
// when the daemon could not be reached, was not ready, found the datapath
// too slow to answer (504) or was busy with the same port; code 7 (invalid network configuration) when it refused the
// request itself; 999 otherwise. doing says what the plugin was doing.
func daemonError(doing, server string, err error) *types.Error {
	msg := fmt.Sprintf("%s: %v", doing, err)
	if client.StatusOf(err) != 0 {
		// The daemon's message starts with its kind (docs/API.md), and so
		// does the plugin's: what the plugin was doing goes after it.
		if kind, rest, ok := strings.Cut(err.Error(), ": "); ok {
			msg = fmt.Sprintf("%s: %s: %s", kind, doing, rest)
		}
	}
	var uerr *url.Error
	switch status := client.StatusOf(err); {
	case status == 0 && (errors.As(err, &uerr) || errors.Is(err, context.DeadlineExceeded)):
		return types.NewError(types.ErrTryAgainLater, msg,
			fmt.Sprintf("the ovs-vnet daemon at %s did not answer: is it running, and is \"server\" right?", server))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return types.NewError(types.ErrInvalidNetworkConfig, msg,
			"the daemon wants a bearer token: set \"token_file\" to the file its --token-file reads")
	case status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		return types.NewError(types.ErrTryAgainLater, msg, "")
	case status == http.StatusConflict && strings.Contains(err.Error(), "being changed by another request"):
		return types.NewError(types.ErrTryAgainLater, msg, "")
	case status == http.StatusBadRequest || status == http.StatusNotFound || status == http.StatusConflict ||
		status == http.StatusNotImplemented: // security groups on a backend that does not enforce them
		return types.NewError(types.ErrInvalidNetworkConfig, msg, "")
	default:
		return types.NewError(types.ErrInternal, msg, "")
	}
}

// Command vnetctl is the command-line client of the ovs-vnet daemon
// (docs/CLI.md). The commands live in package cli; this only wires the
// process to them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ovs-vnet/ovs-vnet/cli"
)

func main() {
	// Ctrl-C cancels the request in flight rather than killing vnetctl
	// mid-write, so the error says what was interrupted.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

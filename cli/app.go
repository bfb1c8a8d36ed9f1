// Package cli is vnetctl, the command-line client of ovs-vnet's REST API
// (docs/CLI.md). Every request goes through package client; this package only
// parses the command line, renders the answers and maps failures to exit codes.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/client"
)

// Output formats of -o/--output.
const (
	OutputTable = "table" // aligned columns for people (the default)
	OutputJSON  = "json"  // the daemon's objects: a list for list commands, the object otherwise
	OutputName  = "name"  // kind/name, one a line, for scripts
)

// Environment variables that stand in for the global flags.
const (
	EnvServer    = "VNETCTL_SERVER"
	EnvToken     = "VNETCTL_TOKEN"
	EnvTokenFile = "VNETCTL_TOKEN_FILE"
	EnvCACert    = "VNETCTL_CACERT"
)

// DefaultTimeout bounds one command's requests. A port's PUT answers only
// once the port forwards, and the daemon gives the datapath up to 60 s.
const DefaultTimeout = 90 * time.Second

// App is what every command shares: the global options, the client built from
// them and where output goes. Command constructors take it
// (func newXCmd(app *App) *cobra.Command) and read it only inside RunE or a
// completion function, once the flags are parsed.
//
// In RunE a command typically does:
//
//	c, err := app.Client()          // resolves --server/--token… and the env vars
//	ctx, cancel := app.Context(cmd) // the --timeout deadline
//	defer cancel()
//	format, err := app.Format(OutputTable, OutputJSON) // -o, checked against what it supports
//	... app.PrintJSON(v), app.Table(header, rows) or app.Printf(…), all on app.Out
//
// A mistake on the command line found in RunE is returned as
// usageErrorf(…) (exit 2, usage shown); a daemon's error is returned as is
// (Run maps its status to the exit code). Flags naming objects complete with
// completeNames(app, portKind(), -1) or completeNetworks(app).
type App struct {
	Out io.Writer // results
	Err io.Writer // errors, hints and "no objects" notes
	// Getenv reads the environment (os.Getenv in vnetctl, a map in tests).
	Getenv func(string) string

	// Global flags, as given; empty means "from the environment, else the default".
	Server    string
	Token     string
	TokenFile string
	CACert    string
	Timeout   time.Duration
	Output    string // -o: table (default), json, name; topology also takes text and dot

	client  *client.Client
	started bool // a RunE was entered: an error now is no usage error
}

// usageError is a mistake on the command line: vnetctl exits 2 and prints the
// command's usage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// ServerAddress is the daemon's address: --server, $VNETCTL_SERVER, or the default.
func (a *App) ServerAddress() string {
	return firstNonEmpty(a.Server, a.getenv(EnvServer), client.DefaultServer)
}

// Client returns the client of the daemon the global options name, built on
// first use.
func (a *App) Client() (*client.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	if a.Timeout <= 0 {
		return nil, usageErrorf("--timeout %s: want a positive duration such as 30s", a.Timeout)
	}
	token, err := a.token()
	if err != nil {
		return nil, err
	}
	c, err := client.New(a.ServerAddress(), client.Options{Token: token, CAFile: firstNonEmpty(a.CACert, a.getenv(EnvCACert))})
	if err != nil {
		return nil, usageError{err}
	}
	a.client = c
	return c, nil
}

// token resolves the bearer token: the flags win over the environment, and
// within each the token itself over a file holding it.
func (a *App) token() (string, error) {
	if a.Token != "" && a.TokenFile != "" {
		return "", usageErrorf("--token and --token-file exclude each other")
	}
	file := a.TokenFile
	switch {
	case a.Token != "":
		return a.Token, nil
	case file != "":
	case a.getenv(EnvToken) != "":
		return a.getenv(EnvToken), nil
	default:
		file = a.getenv(EnvTokenFile)
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	// The daemon trims its own token file the same way, so one file serves both.
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return tok, nil
}

// Context is the command's context bounded by --timeout; the deadline covers
// every request the command makes.
func (a *App) Context(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), a.Timeout)
}

// Format returns the -o format when the command supports it; the first
// supported one is the command's default. "table", the flag's default, also
// stands for the command's default (topology's text tree).
func (a *App) Format(supported ...string) (string, error) {
	if a.Output == "" || a.Output == OutputTable {
		return supported[0], nil
	}
	for _, f := range supported {
		if a.Output == f {
			return f, nil
		}
	}
	return "", usageErrorf("-o %s: this command prints %s", a.Output, strings.Join(supported, ", "))
}

// PrintJSON writes v as indented JSON and a newline to Out.
func (a *App) PrintJSON(v any) error {
	enc := json.NewEncoder(a.Out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// Table writes aligned columns under a header to Out.
func (a *App) Table(header []string, rows [][]string) error {
	return writeTable(a.Out, header, rows)
}

// Printf writes to Out; a failed write (a closed pipe) is the command's error.
func (a *App) Printf(format string, args ...any) error {
	if _, err := fmt.Fprintf(a.Out, format, args...); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func (a *App) getenv(key string) string {
	if a.Getenv == nil {
		return ""
	}
	return a.Getenv(key)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

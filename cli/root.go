package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/client"
	"github.com/ovs-vnet/ovs-vnet/internal/buildinfo"
)

// commands are vnetctl's top-level commands, in the order help lists them.
// Adding a command is one line here.
func commands() []func(*App) *cobra.Command {
	return []func(*App) *cobra.Command{
		newNetworkCmd,
		newRouterCmd,
		newPortCmd,
		newSecurityGroupCmd,
		newFloatingIPCmd,
		newPortForwardCmd,
		newTopologyCmd,
		newFlowsCmd,
		newTraceCmd,
		newInfoCmd,
	}
}

// NewRoot builds the vnetctl command tree around app.
func NewRoot(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "vnetctl",
		Short: "Manage ovs-vnet's networks, routers, ports, security groups and NAT",
		Long: `vnetctl talks to the ovs-vnet daemon's REST API: it creates, lists and
deletes networks, routers, ports, security groups, floating IPs and port
forwards, and shows the topology they make.

The daemon is reached at --server ($` + EnvServer + `, default ` + client.DefaultServer + `):
an http:// or https:// URL, or its unix socket (unix:/run/ovs-vnet/api.sock).`,
		Version: buildinfo.Version(),
		// Usage is printed by Run, for usage errors only: a daemon's refusal
		// is no reason to show the flags.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(app.Out)
	root.SetErr(app.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&app.Server, "server", "", "daemon address: http(s)://HOST:PORT or unix:PATH (default $"+EnvServer+", else "+client.DefaultServer+")")
	pf.StringVar(&app.Token, "token", "", "bearer token (default $"+EnvToken+")")
	pf.StringVar(&app.TokenFile, "token-file", "", "file holding the bearer token (default $"+EnvTokenFile+")")
	pf.StringVar(&app.CACert, "cacert", "", "PEM file to verify an https daemon with (default $"+EnvCACert+", else the system's roots)")
	pf.DurationVar(&app.Timeout, "timeout", DefaultTimeout, "give up on the daemon after this long")
	pf.StringVarP(&app.Output, "output", "o", OutputTable, "output format: table, json or name (topology: text, dot or json)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{OutputTable, OutputJSON, OutputName, formatText, formatDOT}, cobra.ShellCompDirectiveNoFileComp))
	for _, c := range commands() {
		root.AddCommand(c(app))
	}
	markStarts(root, app)
	return root
}

// markStarts records in app when a command's RunE begins. Cobra reports
// unknown commands, bad flags, wrong arguments and missing required flags
// before that, so an error without a start is a usage error.
func markStarts(c *cobra.Command, app *App) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			app.started = true
			return run(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		markStarts(sub, app)
	}
}

// Run runs vnetctl with args and returns its exit code. getenv reads the
// environment; ctx ends the command early (Ctrl-C).
func Run(ctx context.Context, args []string, out, errOut io.Writer, getenv func(string) string) int {
	app := &App{Out: out, Err: errOut, Getenv: getenv}
	root := NewRoot(app)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if !app.started {
		err = usageError{err}
	}
	fmt.Fprintf(errOut, "Error: %s\n", errorMessage(err, app.ServerAddress(), app.Timeout))
	code := ExitCode(err)
	if code == ExitUsage && cmd != nil {
		fmt.Fprintf(errOut, "\n%s", cmd.UsageString())
	}
	return code
}

// groupCmd is a command that only holds others: without arguments it shows
// its help, and an unknown subcommand is a usage error rather than the help
// and a success.
func groupCmd(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Aliases: aliases,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
}

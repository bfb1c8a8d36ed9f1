package cli

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

func networkKind() kind[v1.Network] {
	return kind[v1.Network]{
		name:   "network",
		plural: "networks",
		header: []string{"NAME", "SUBNET", "GATEWAY", "MTU", "MASQ", "ID"},
		row: func(n v1.Network) []string {
			return []string{n.Name, n.Subnet.String(), n.Gateway.String(), strconv.Itoa(n.MTU), yesNo(n.Masquerade), strconv.Itoa(n.ID)}
		},
		nameOf: func(n v1.Network) string { return n.Name },
		get:    (*client.Client).Network,
		list:   (*client.Client).Networks,
		del:    (*client.Client).DeleteNetwork,
	}
}

func newNetworkCmd(app *App) *cobra.Command {
	k := networkKind()
	cmd := groupCmd("network", "Create, show and delete networks (L2 segments with one IPv4 subnet)", "networks", "net")
	cmd.AddCommand(newNetworkCreateCmd(app, k), newGetCmd(app, k), newListCmd(app, k), newDeleteCmd(app, k))
	return cmd
}

func newNetworkCreateCmd(app *App, k kind[v1.Network]) *cobra.Command {
	var spec v1.NetworkSpec
	cmd := &cobra.Command{
		Use:   "create NAME --subnet CIDR",
		Short: "Create a network, or confirm one with the same spec exists",
		Long: `Create a network. Creating it again with the same spec changes nothing
("unchanged"); a different spec is a conflict (exit 4): delete and re-create
it to change it.`,
		Example: `  vnetctl network create blue --subnet 10.10.0.0/24
  vnetctl network create red --subnet 10.20.0.0/24 --gateway 10.20.0.254 --masquerade`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			n, created, err := c.PutNetwork(ctx, args[0], spec)
			if err != nil {
				return err
			}
			return printApplied(app, k, n, outcome(created), "")
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Subnet, "subnet", "", "IPv4 subnet in CIDR form, /8 to /30 (required)")
	f.StringVar(&spec.Gateway, "gateway", "", "gateway address (default: the subnet's first host address)")
	f.IntVar(&spec.MTU, "mtu", 0, "MTU, 576 to 9000 (default 1500)")
	f.BoolVar(&spec.Masquerade, "masquerade", false, "let the network reach the host's outside world through SNAT")
	_ = cmd.MarkFlagRequired("subnet")
	for _, name := range []string{"subnet", "gateway", "mtu"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	return cmd
}

// outcome names what a PUT did, as its status told.
func outcome(created bool) string {
	if created {
		return "created"
	}
	return "unchanged"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// completeNetworks completes a --network or --networks flag with the
// daemon's networks, leaving out those already given (the flag may repeat,
// and --networks takes a comma-separated list).
func completeNetworks(app *App) cobra.CompletionFunc {
	k := networkKind()
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		given, _ := cmd.Flags().GetStringSlice("network")
		more, _ := cmd.Flags().GetStringSlice("networks")
		given = append(given, more...)
		// In "blue,re" the shell completes the whole word: keep its head.
		head := toComplete[:strings.LastIndex(toComplete, ",")+1]
		given = append(given, strings.Split(strings.TrimSuffix(head, ","), ",")...)
		names, directive := completeNames(app, k, -1)(cmd, given, "")
		for i, n := range names {
			names[i] = head + n
		}
		return names, directive
	}
}

package cli

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func newFlowsCmd(app *App) *cobra.Command {
	var port, network string
	cmd := &cobra.Command{
		Use:   "flows [--port PORT | --network NETWORK]",
		Short: "Show ovs-vnet's OpenFlow flows with their counters, grouped by owner",
		Long: `Show the flows ovs-vnet installed on the integration bridge (OVS backend only),
as ovs-ofctl -O OpenFlow13 dump-flows prints them, with packet and byte counters,
grouped by the object that owns them (the cookie names it): the pipeline's
skeleton, each network, each network's routes, each port.

--port shows one port's flows; --network a network's own, its routes' and
its ports' flows.`,
		Example: `  vnetctl flows --port web1
  vnetctl flows --network blue -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port != "" && network != "" {
				return usageErrorf("give --port or --network, not both")
			}
			format, err := app.Format(OutputTable, OutputJSON)
			if err != nil {
				return err
			}
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			flows, err := c.Flows(ctx, port, network)
			if err != nil {
				return err
			}
			if format == OutputJSON {
				return app.PrintJSON(flows)
			}
			return app.Printf("%s", formatFlows(flows))
		},
	}
	cmd.Flags().StringVar(&port, "port", "", "only this port's flows")
	cmd.Flags().StringVar(&network, "network", "", "only this network's flows and its ports'")
	_ = cmd.RegisterFlagCompletionFunc("port", completeNames(app, portKind(), -1))
	_ = cmd.RegisterFlagCompletionFunc("network", completeNetworks(app))
	return cmd
}

// formatFlows renders flows as ovs-ofctl does, under a heading per owner:
// the pipeline first, then each network, its routes, then the ports, by
// name; within an owner in the daemon's order (table, then priority).
func formatFlows(flows []v1.Flow) string {
	type owner struct{ Kind, Name, Host string }
	groups := map[owner][]v1.Flow{}
	for _, f := range flows {
		o := owner{Kind: f.OwnerKind, Name: f.Owner, Host: f.Host}
		groups[o] = append(groups[o], f)
	}
	rank := map[string]int{v1.OwnerPipeline: 0, v1.OwnerNetwork: 1, v1.OwnerRoutes: 1, v1.OwnerPort: 2, v1.OwnerRemote: 3}
	owners := slices.SortedFunc(maps.Keys(groups), func(a, b owner) int {
		return cmp.Or(cmp.Compare(rank[a.Kind], rank[b.Kind]), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	var b strings.Builder
	for i, o := range owners {
		if i > 0 {
			b.WriteString("\n")
		}
		var packets uint64
		for _, f := range groups[o] {
			packets += f.Packets
		}
		fmt.Fprintf(&b, "# %s: %d flows, %d packets\n", v1.OwnerString(o.Kind, o.Name, o.Host), len(groups[o]), packets)
		for _, f := range groups[o] {
			fmt.Fprintf(&b, " %s", f.Text)
			if f.Drop != "" {
				fmt.Fprintf(&b, "   # drop: %s", f.Drop)
			}
			b.WriteString("\n")
		}
	}
	if len(owners) == 0 {
		b.WriteString("no flows\n")
	}
	return b.String()
}

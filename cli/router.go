package cli

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

func routerKind() kind[v1.Router] {
	return kind[v1.Router]{
		name:   "router",
		plural: "routers",
		header: []string{"NAME", "NETWORKS", "ID"},
		row: func(r v1.Router) []string {
			return []string{r.Name, strings.Join(r.Networks, ","), strconv.Itoa(r.ID)}
		},
		nameOf: func(r v1.Router) string { return r.Name },
		get:    (*client.Client).Router,
		list:   (*client.Client).Routers,
		del:    (*client.Client).DeleteRouter,
	}
}

func newRouterCmd(app *App) *cobra.Command {
	k := routerKind()
	cmd := groupCmd("router", "Create, show and delete routers (L3 between networks)", "routers", "rt")
	cmd.AddCommand(newRouterCreateCmd(app, k), newGetCmd(app, k), newListCmd(app, k), newDeleteCmd(app, k))
	return cmd
}

func newRouterCreateCmd(app *App, k kind[v1.Router]) *cobra.Command {
	var network, networks []string
	cmd := &cobra.Command{
		Use:   "create NAME --network A --network B",
		Short: "Create a router joining networks, or replace its networks",
		Long: `Create a router: every network it lists routes to every other one, each
through its own gateway. Creating it again with the same networks changes
nothing ("unchanged"); with other networks it is replaced live ("replaced"):
networks that stay keep routing.`,
		Example: `  vnetctl router create r1 --network blue --network red
  vnetctl router create r1 --networks blue,red,green`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNames(app, k, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			want := slices.Concat(network, networks)
			if len(want) == 0 {
				return usageErrorf("name the networks to join: --network A --network B (or --networks A,B)")
			}
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			// Only to tell "unchanged" from "replaced": both answer 200.
			before, err := c.Router(ctx, args[0])
			if err != nil && client.StatusOf(err) != http.StatusNotFound {
				return err
			}
			r, created, err := c.PutRouter(ctx, args[0], v1.RouterSpec{Networks: want})
			if err != nil {
				return err
			}
			result, detail := outcome(created), ""
			if !created && !slices.Equal(before.Networks, r.Networks) {
				result = "replaced"
				detail = "networks " + strings.Join(r.Networks, ",")
				if len(before.Networks) > 0 {
					detail += ", were " + strings.Join(before.Networks, ",")
				}
			}
			return printApplied(app, k, r, result, detail)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&network, "network", nil, "a network to join (repeat the flag, or separate by commas)")
	f.StringSliceVar(&networks, "networks", nil, "the networks to join, separated by commas")
	_ = cmd.RegisterFlagCompletionFunc("network", completeNetworks(app))
	_ = cmd.RegisterFlagCompletionFunc("networks", completeNetworks(app))
	return cmd
}

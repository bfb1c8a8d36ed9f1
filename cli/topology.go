package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// Formats of topology besides json.
const (
	formatText = "text" // a tree of networks and their ports (the default)
	formatDOT  = "dot"  // Graphviz
)

func newTopologyCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "topology",
		Aliases: []string{"topo"},
		Short:   "Show networks, routers and ports together: a tree, a Graphviz graph or JSON",
		Example: `  vnetctl topology
  vnetctl topology -o dot | dot -Tsvg > topology.svg
  vnetctl topology -o json | jq '.ports[].ip'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := app.Format(formatText, formatDOT, OutputJSON)
			if err != nil {
				return err
			}
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			// Four reads, not one snapshot: a change in between shows as
			// a port of a network not listed, which both renderings
			// handle, or a floating IP of a port not listed, which DOT
			// draws as a bare node.
			var t Topology
			if t.Networks, err = c.Networks(ctx); err != nil {
				return err
			}
			if t.Routers, err = c.Routers(ctx); err != nil {
				return err
			}
			if t.Ports, err = c.Ports(ctx, ""); err != nil {
				return err
			}
			if t.FloatingIPs, err = c.FloatingIPs(ctx, ""); err != nil {
				return err
			}
			switch format {
			case OutputJSON:
				t.Networks, t.Routers, t.Ports, t.FloatingIPs = nonNil(t.Networks), nonNil(t.Routers), nonNil(t.Ports), nonNil(t.FloatingIPs)
				return app.PrintJSON(t)
			case formatDOT:
				return app.Printf("%s", DOT(t))
			}
			return writeTree(app.Out, t)
		},
	}
}

// writeTree renders the topology for a terminal: each network with its
// ports below it, then the routers and the floating IPs.
func writeTree(out io.Writer, t Topology) error {
	t, byNet := t.sorted()
	var b strings.Builder
	if len(t.Networks) == 0 && len(t.Ports) == 0 {
		b.WriteString("no networks\n")
	}
	for _, n := range t.Networks {
		attrs := []string{n.Subnet.String(), "gateway " + n.Gateway.String(), fmt.Sprintf("mtu %d", n.MTU)}
		if n.Masquerade {
			attrs = append(attrs, "masquerade")
		}
		fmt.Fprintf(&b, "network %s (%s)\n", n.Name, strings.Join(attrs, ", "))
		writeTreePorts(&b, byNet[n.Name])
	}
	for _, name := range t.unlistedNetworks(byNet) {
		fmt.Fprintf(&b, "network %s (not listed)\n", name)
		writeTreePorts(&b, byNet[name])
	}
	for _, r := range t.Routers {
		fmt.Fprintf(&b, "router %s: %s\n", r.Name, strings.Join(r.Networks, " <-> "))
	}
	for _, f := range t.FloatingIPs {
		fmt.Fprintf(&b, "floating-ip %s: %s -> port %s (%s)\n", f.Name, f.Address, f.Port, f.IP)
	}
	if _, err := io.WriteString(out, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func writeTreePorts(b *strings.Builder, ports []v1.Port) {
	if len(ports) == 0 {
		b.WriteString("    (no ports)\n")
		return
	}
	tw := tabwriter.NewWriter(b, 0, 8, 2, ' ', 0)
	for i, p := range ports {
		branch := "├── "
		if i == len(ports)-1 {
			branch = "└── "
		}
		where := "netns " + p.Netns + ", " + p.Ifname
		if p.Type == v1.PortTap {
			where = "tap " + p.HostIfname
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\n", branch, p.Name, p.IP, p.MAC, where)
	}
	_ = tw.Flush() // a strings.Builder does not fail
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

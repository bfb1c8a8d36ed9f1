package cli

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

// natKind is what floating IPs and port forwards share beyond kind: both
// list by port and show their counters on the port's host.
type natKind[T any] struct {
	kind[T]
	listOf   func(*client.Client, context.Context, string) ([]T, error) // by port, "" for all
	getStats func(*client.Client, context.Context, string, bool) (T, error)
	stats    []string // the columns --stats adds
	statsRow func(*v1.NATStats) []string
	statsOf  func(T) *v1.NATStats
	metrics  string // the metrics that count the same, for the help
	// mapping is what the object maps, as create prints it:
	// "203.0.113.50 -> web1 10.10.0.2".
	mapping func(T) string
}

func floatingIPKind() natKind[v1.FloatingIP] {
	return natKind[v1.FloatingIP]{
		kind: kind[v1.FloatingIP]{
			name:   "floating-ip",
			plural: "floating-ips",
			header: []string{"NAME", "ADDRESS", "PORT", "IP", "NETWORK", "HOST"},
			row: func(f v1.FloatingIP) []string {
				return []string{f.Name, f.Address.String(), f.Port, f.IP.String(), f.Network, dash(f.Host)}
			},
			nameOf: func(f v1.FloatingIP) string { return f.Name },
			get: func(c *client.Client, ctx context.Context, name string) (v1.FloatingIP, error) {
				return c.FloatingIP(ctx, name, false)
			},
			list: func(c *client.Client, ctx context.Context) ([]v1.FloatingIP, error) { return c.FloatingIPs(ctx, "") },
			del:  (*client.Client).DeleteFloatingIP,
		},
		listOf:   (*client.Client).FloatingIPs,
		getStats: (*client.Client).FloatingIP,
		stats:    []string{"CONNECTIONS-IN", "CONNECTIONS-OUT"},
		statsRow: func(s *v1.NATStats) []string { return []string{count64(s.Connections), count64(s.ConnectionsOut)} },
		statsOf:  func(f v1.FloatingIP) *v1.NATStats { return f.Stats },
		metrics:  "ovs_vnet_floating_ip_*",
		mapping:  func(f v1.FloatingIP) string { return f.Address.String() + " -> " + f.Port + " " + f.IP.String() },
	}
}

func portForwardKind() natKind[v1.PortForward] {
	return natKind[v1.PortForward]{
		kind: kind[v1.PortForward]{
			name:   "port-forward",
			plural: "port-forwards",
			header: []string{"NAME", "PROTOCOL", "HOST-PORT", "PORT", "TARGET", "NETWORK", "HOST"},
			row: func(f v1.PortForward) []string {
				return []string{f.Name, f.Protocol, hostPort(f), f.Port,
					target(f), f.Network, dash(f.Host)}
			},
			nameOf: func(f v1.PortForward) string { return f.Name },
			get: func(c *client.Client, ctx context.Context, name string) (v1.PortForward, error) {
				return c.PortForward(ctx, name, false)
			},
			list: func(c *client.Client, ctx context.Context) ([]v1.PortForward, error) { return c.PortForwards(ctx, "") },
			del:  (*client.Client).DeletePortForward,
		},
		listOf:   (*client.Client).PortForwards,
		getStats: (*client.Client).PortForward,
		stats:    []string{"CONNECTIONS", "PACKETS", "BYTES"},
		statsRow: func(s *v1.NATStats) []string {
			return []string{count64(s.Connections), count64(s.Packets), count64(s.Bytes)}
		},
		statsOf: func(f v1.PortForward) *v1.NATStats { return f.Stats },
		metrics: "ovs_vnet_port_forward_*",
		mapping: func(f v1.PortForward) string {
			return f.Protocol + "/" + hostPort(f) + " -> " + f.Port + " " + target(f)
		},
	}
}

// hostPort is what a forward listens on: 8080 on every address of the
// host, or 192.0.2.9:8080 on one.
func hostPort(f v1.PortForward) string {
	if f.HostIP.IsValid() {
		return netip.AddrPortFrom(f.HostIP, uint16(f.HostPort)).String()
	}
	return strconv.Itoa(f.HostPort)
}

// target is where a forward leads: the port's address and target port.
func target(f v1.PortForward) string { return netip.AddrPortFrom(f.IP, uint16(f.TargetPort)).String() }

func count64(n uint64) string { return strconv.FormatUint(n, 10) }

func newFloatingIPCmd(app *App) *cobra.Command {
	k := floatingIPKind()
	cmd := groupCmd("floating-ip", "Map public addresses 1:1 onto ports (DNAT in, SNAT out)", "floating-ips", "fip")
	cmd.AddCommand(newFloatingIPCreateCmd(app, k), newNATGetCmd(app, k), newNATListCmd(app, k), newDeleteCmd(app, k.kind))
	return cmd
}

func newPortForwardCmd(app *App) *cobra.Command {
	k := portForwardKind()
	cmd := groupCmd("port-forward", "Forward ports of the host to ports (docker run -p)", "port-forwards", "pf")
	cmd.AddCommand(newPortForwardCreateCmd(app, k), newNATGetCmd(app, k), newNATListCmd(app, k), newDeleteCmd(app, k.kind))
	return cmd
}

func newFloatingIPCreateCmd(app *App, k natKind[v1.FloatingIP]) *cobra.Command {
	var spec v1.FloatingIPSpec
	cmd := &cobra.Command{
		Use:   "create NAME --address ADDR --port PORT",
		Short: "Map an address onto a port, or move it to another port",
		Long: `Create a floating IP: connections to ADDR, of any protocol, reach the
port's own address, and the port's own connections to the outside leave with
ADDR as their source, whether or not its network masquerades. The outside
network must route ADDR to the host; ovs-vnet puts it on no interface.

Creating it again with the same spec changes nothing ("unchanged"); with
another port or address it is replaced at once ("replaced").`,
		Example: `  vnetctl floating-ip create pub --address 203.0.113.50 --port web1
  vnetctl fip create pub --address 203.0.113.50 --port web2    # move it`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNames(app, k.kind, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return putNAT(app, cmd, k, args[0], func(c *client.Client, ctx context.Context) (v1.FloatingIP, bool, error) {
				return c.PutFloatingIP(ctx, args[0], spec)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&spec.Address, "address", "", "the IPv4 address the outside reaches the port at (required)")
	fl.StringVar(&spec.Port, "port", "", "the port it maps onto (required)")
	_ = cmd.MarkFlagRequired("address")
	_ = cmd.MarkFlagRequired("port")
	_ = cmd.RegisterFlagCompletionFunc("address", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("port", completeNames(app, portKind(), -1))
	return cmd
}

func newPortForwardCreateCmd(app *App, k natKind[v1.PortForward]) *cobra.Command {
	var spec v1.PortForwardSpec
	cmd := &cobra.Command{
		Use:   "create NAME --port PORT --host-port N [--target-port N]",
		Short: "Forward a port of the host to a port, or change a forward",
		Long: `Create a port forward: connections to HOST-PORT on the host's addresses
(or on --host-ip alone) reach the port on --target-port (default: the same
number), from outside, from ports of any network, from the port itself and
from the host on its non-loopback addresses. The port's security groups
judge them as any other connection to it.

A host port is forwarded once per host and protocol: another forward of
the same one is a conflict (exit 4). Creating it again with the same spec
changes nothing ("unchanged"); with another one it is replaced at once
("replaced").`,
		Example: `  vnetctl port-forward create web --port web1 --host-port 8080 --target-port 80
  vnetctl pf create dns --port dns1 --protocol udp --host-port 53 --host-ip 192.0.2.9`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNames(app, k.kind, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return putNAT(app, cmd, k, args[0], func(c *client.Client, ctx context.Context) (v1.PortForward, bool, error) {
				return c.PutPortForward(ctx, args[0], spec)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&spec.Port, "port", "", "the port to forward to (required)")
	fl.IntVar(&spec.HostPort, "host-port", 0, "the host's port, 1-65535 (required)")
	fl.IntVar(&spec.TargetPort, "target-port", 0, "the port's own port (default: --host-port)")
	fl.StringVar(&spec.Protocol, "protocol", "", "tcp (default) or udp")
	fl.StringVar(&spec.HostIP, "host-ip", "", "forward on this IPv4 address of the host only (default: all but loopback)")
	_ = cmd.MarkFlagRequired("port")
	_ = cmd.MarkFlagRequired("host-port")
	_ = cmd.RegisterFlagCompletionFunc("port", completeNames(app, portKind(), -1))
	_ = cmd.RegisterFlagCompletionFunc("protocol", cobra.FixedCompletions([]string{v1.ProtoTCP, v1.ProtoUDP}, cobra.ShellCompDirectiveNoFileComp))
	for _, name := range []string{"host-port", "target-port", "host-ip"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	return cmd
}

// putNAT runs a create: put, and print the outcome with what the object
// maps. A PUT of another spec replaces the object and answers 200 as one of
// the same spec does: the object read before it tells "replaced" from
// "unchanged".
func putNAT[T comparable](app *App, cmd *cobra.Command, k natKind[T], name string, put func(*client.Client, context.Context) (T, bool, error)) error {
	c, err := app.Client()
	if err != nil {
		return err
	}
	ctx, cancel := app.Context(cmd)
	defer cancel()
	before, err := k.get(c, ctx, name)
	if err != nil && client.StatusOf(err) != http.StatusNotFound {
		return err
	}
	obj, created, err := put(c, ctx)
	if err != nil {
		return err
	}
	result := outcome(created)
	if !created && before != obj {
		result = "replaced"
	}
	return printApplied(app, k.kind, obj, result, k.mapping(obj))
}

func newNATListCmd[T any](app *App, k natKind[T]) *cobra.Command {
	var port string
	cmd := &cobra.Command{
		Use:     "list [--port PORT]",
		Aliases: []string{"ls"},
		Short:   "List " + k.plural + ", all or one port's",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			objs, err := k.listOf(c, ctx, port)
			if err != nil {
				return err
			}
			return printList(app, k.kind, objs)
		},
	}
	cmd.Flags().StringVar(&port, "port", "", "only the "+k.plural+" of this port")
	_ = cmd.RegisterFlagCompletionFunc("port", completeNames(app, portKind(), -1))
	return cmd
}

func newNATGetCmd[T any](app *App, k natKind[T]) *cobra.Command {
	var stats bool
	cmd := &cobra.Command{
		Use:     "get NAME [--stats]",
		Aliases: []string{"show"},
		Short:   "Show one " + k.name,
		Long: "Show one " + k.name + ". --stats adds its counters on the port's host, as the\n" +
			"metrics " + k.metrics + " count them (docs/metrics.md);\n" +
			"they show as - when the port is on another host: ask that host's daemon.",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNames(app, k.kind, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := app.Format(OutputTable, OutputJSON, OutputName)
			if err != nil {
				return err
			}
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			obj, err := k.getStats(c, ctx, args[0], stats)
			if err != nil {
				return err
			}
			if format != OutputTable || !stats {
				return printOne(app, k.kind, obj)
			}
			row := k.row(obj)
			if s := k.statsOf(obj); s != nil {
				row = append(row, k.statsRow(s)...)
			} else {
				for range k.stats {
					row = append(row, "-")
				}
			}
			return app.Table(append(slices.Clone(k.header), k.stats...), [][]string{row})
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "show its counters on the port's host")
	return cmd
}

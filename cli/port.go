package cli

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

func portKind() kind[v1.Port] {
	return kind[v1.Port]{
		name:   "port",
		plural: "ports",
		header: []string{"NAME", "NETWORK", "TYPE", "IP", "MAC", "NETNS", "IFNAME", "HOST-IF", "OFPORT", "STATUS"},
		row: func(p v1.Port) []string {
			ofport := "-" // the Linux backend has none
			if p.Ofport != 0 {
				ofport = strconv.Itoa(p.Ofport)
			}
			return []string{p.Name, p.Network, p.Type, p.IP, p.MAC, dash(p.Netns), dash(p.Ifname), dash(p.HostIfname), ofport, portStatus(p)}
		},
		// Only when not the default: a port nobody asked to leave alone has
		// nothing to say here.
		details: func(p v1.Port) []string {
			if p.Configure != nil && !*p.Configure {
				return []string{"configure: false"}
			}
			return nil
		},
		nameOf: func(p v1.Port) string { return p.Name },
		get:    (*client.Client).Port,
		list: func(c *client.Client, ctx context.Context) ([]v1.Port, error) {
			return c.Ports(ctx, "")
		},
		del: (*client.Client).DeletePort,
	}
}

// portStatus is a port's status in one word, with the reason of a port
// that is down (`down:netns_gone`), or `-` for another host's port, whose
// status this host does not know.
func portStatus(p v1.Port) string {
	if p.Status == v1.PortDown && p.StatusReason != "" {
		return p.Status + ":" + p.StatusReason
	}
	return dash(p.Status)
}

func newPortCmd(app *App) *cobra.Command {
	k := portKind()
	cmd := groupCmd("port", "Attach namespaces and VMs to networks, show and detach them", "ports")
	cmd.AddCommand(newPortCreateCmd(app, k), newGetCmd(app, k), newPortListCmd(app, k), newPortSetGroupsCmd(app, k), newPortSetConfigureCmd(app, k), newDeleteCmd(app, k))
	return cmd
}

func newPortCreateCmd(app *App, k kind[v1.Port]) *cobra.Command {
	var spec v1.PortSpec
	var defaultRoute, configure bool
	cmd := &cobra.Command{
		Use:   "create NAME --network NET [--netns NS]",
		Short: "Attach a namespace (veth) or create a tap device on a network",
		Long: `Create a port. It returns once the port forwards: a ping sent right after
works. The address and MAC are allocated unless given. Creating it again with
the same spec changes nothing ("unchanged"); a spec that differs only in its
--security-group list changes the groups in place ("groups changed", as
set-groups does), or only in --configure ("configure changed", as
set-configure does); any other difference is a conflict (exit 4): delete and
re-create it to change it.

--configure=false (veth only) leaves the namespace end named, up and without
address or route, for a DHCP client inside (docs/DHCP.md): it gets the
port's address, which is reserved for it all the same.`,
		Example: `  ip netns add web1
  vnetctl port create web1 --network blue --netns web1
  vnetctl port create db1 --network blue --netns /proc/4242/ns/net --ifname net0 --ip 10.10.0.20
  vnetctl port create vm1 --network blue --type tap --ifname tap-vm1
  vnetctl port create vm2 --network blue --type tap --ifname tap-vm2 --owner libvirt-qemu --queues 2
  vnetctl port create db1 --network blue --netns db1 --security-group db --security-group ssh
  vnetctl port create dh1 --network blue --netns dh1 --configure=false`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := app.Client()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("default-route") {
				spec.DefaultRoute = &defaultRoute
			}
			if cmd.Flags().Changed("configure") {
				spec.Configure = &configure
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			// Only to tell "unchanged" from what changed in place: all answer 200.
			before, err := c.Port(ctx, args[0])
			if err != nil && client.StatusOf(err) != http.StatusNotFound {
				return err
			}
			p, created, err := c.PutPort(ctx, args[0], spec)
			if err != nil {
				return err
			}
			switch {
			case !created && !slices.Equal(before.SecurityGroups, p.SecurityGroups):
				return printApplied(app, k, p, "groups changed", groupsDetail(before, p))
			case !created && configured(before) != configured(p):
				return printApplied(app, k, p, "configure changed", configureDetail(p))
			}
			return printApplied(app, k, p, outcome(created), p.IP+" "+p.MAC+" on "+p.Network)
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Network, "network", "", "the network to attach to (required)")
	f.StringVar(&spec.Netns, "netns", "", "network namespace: a name under /var/run/netns or a path such as /proc/PID/ns/net (veth only, required there)")
	f.StringVar(&spec.Ifname, "ifname", "", "veth: the interface inside the namespace (default eth0); tap: the tap device's name")
	f.StringVar(&spec.IP, "ip", "", "IPv4 address in the subnet (default: the next free one)")
	f.StringVar(&spec.MAC, "mac", "", "MAC address (default: derived from the port name)")
	f.StringVar(&spec.Type, "type", "", "veth (default) or tap")
	f.BoolVar(&defaultRoute, "default-route", false, "veth: take the namespace's default route over, and put it back on delete; =false: never set one (default: set one only where there is none)")
	f.StringVar(&spec.Owner, "owner", "", "tap: the user (name or ID) that may open the tap besides root, e.g. the one running qemu")
	f.StringVar(&spec.Group, "group", "", "tap: the group (name or ID) whose members may open the tap")
	f.IntVar(&spec.Queues, "queues", 0, "tap: 1 for a single-queue tap, 2-256 for a multi-queue one (qemu's queues=N)")
	f.BoolVar(&spec.Adopt, "adopt", false, "tap: take over the tap --ifname names that a VM runtime made (libvirt's managed taps); delete hands it back")
	f.StringSliceVar(&spec.SecurityGroups, "security-group", nil, "a security group whose rules filter the port (repeat the flag, or separate by commas; default: none, unfiltered)")
	f.BoolVar(&configure, "configure", true, "veth: address the namespace end and set its route; =false leaves that to a DHCP client inside")
	_ = cmd.MarkFlagRequired("network")
	_ = cmd.RegisterFlagCompletionFunc("network", completeNetworks(app))
	_ = cmd.RegisterFlagCompletionFunc("netns", completeNetns)
	_ = cmd.RegisterFlagCompletionFunc("security-group", completeNames(app, securityGroupKind(), -1))
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{v1.PortVeth, v1.PortTap}, cobra.ShellCompDirectiveNoFileComp))
	for _, name := range []string{"ifname", "ip", "mac", "owner", "group", "queues"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	return cmd
}

func newPortSetGroupsCmd(app *App, k kind[v1.Port]) *cobra.Command {
	return &cobra.Command{
		Use:   "set-groups NAME [GROUP...]",
		Short: "Change the security groups of a port in place",
		Long: `Replace the security groups that filter a port by the ones given; none
leaves the port unfiltered. The port keeps its link, address and connections:
traffic the new groups allow goes on without a lost packet, and connections
they no longer allow are cut. It is a PUT of the port's own spec with only
its groups changed (docs/API.md, "Changing a port in place").`,
		Example: `  vnetctl port set-groups db1 db ssh
  vnetctl port set-groups db1        # no groups: unfiltered`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeSetGroups(app, k),
		RunE: func(cmd *cobra.Command, args []string) error {
			before, p, err := changePort(app, cmd, args[0], func(spec *v1.PortSpec) { spec.SecurityGroups = args[1:] })
			if err != nil {
				return err
			}
			result := "unchanged"
			if !slices.Equal(before.SecurityGroups, p.SecurityGroups) {
				result = "groups changed"
			}
			return printApplied(app, k, p, result, groupsDetail(before, p))
		},
	}
}

// changePort changes a port in place: a GET of the port, then a PUT of its
// own spec as change leaves it. It returns the port before and after.
func changePort(app *App, cmd *cobra.Command, name string, change func(*v1.PortSpec)) (before, after v1.Port, err error) {
	c, err := app.Client()
	if err != nil {
		return before, after, err
	}
	ctx, cancel := app.Context(cmd)
	defer cancel()
	if before, err = c.Port(ctx, name); err != nil {
		return before, after, err
	}
	spec := portSpecOf(before)
	change(&spec)
	after, _, err = c.PutPort(ctx, name, spec)
	return before, after, err
}

// portSpecOf is the spec a port was made with, as far as a PUT compares it:
// the daemon takes it as the same port, so only the fields changed on it
// count. Another host's port is refused by the daemon, not here.
func portSpecOf(p v1.Port) v1.PortSpec {
	ip, _, _ := strings.Cut(p.IP, "/") // the view's prefix; a spec's address is bare
	return v1.PortSpec{Network: p.Network, Netns: p.Netns, Ifname: p.Ifname, IP: ip, MAC: p.MAC, Type: p.Type,
		DefaultRoute: p.DefaultRoute, ReleaseWithNetns: p.ReleaseWithNetns, Owner: p.Owner, Group: p.Group,
		MultiQueue: p.MultiQueue, Adopt: p.Adopt, SecurityGroups: p.SecurityGroups, Configure: p.Configure}
}

func newPortSetConfigureCmd(app *App, k kind[v1.Port]) *cobra.Command {
	return &cobra.Command{
		Use:   "set-configure NAME true|false",
		Short: "Change whether the daemon addresses a veth port's namespace end, in place",
		Long: `false leaves the namespace end to a DHCP client inside (docs/DHCP.md); true
addresses it and sets its route, as an attach does. Either way the port keeps
its link and its address: false removes nothing (a DHCP client's lease is the
same address), so no connection is cut. It is a PUT of the port's own spec
with only configure changed (docs/API.md, "Changing a port in place").`,
		Example: `  vnetctl port set-configure web1 false
  vnetctl port set-configure web1 true`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeSetConfigure(app, k),
		RunE: func(cmd *cobra.Command, args []string) error {
			want, err := strconv.ParseBool(args[1])
			if err != nil {
				return usageErrorf("configure %q: true or false", args[1])
			}
			before, p, err := changePort(app, cmd, args[0], func(spec *v1.PortSpec) { spec.Configure = &want })
			if err != nil {
				return err
			}
			result := "unchanged"
			if configured(before) != configured(p) {
				result = "configure changed"
			}
			return printApplied(app, k, p, result, configureDetail(p))
		},
	}
}

// configured is the port's configure field, the default (absent) true.
func configured(p v1.Port) bool { return p.Configure == nil || *p.Configure }

func configureDetail(p v1.Port) string { return "configure " + strconv.FormatBool(configured(p)) }

// completeSetConfigure completes the port first, then the value.
func completeSetConfigure(app *App, k kind[v1.Port]) cobra.CompletionFunc {
	ports := completeNames(app, k, 1)
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return ports(cmd, args, toComplete)
		case 1:
			return []cobra.Completion{"true", "false"}, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// groupsDetail says what a port's groups are now and were.
func groupsDetail(before, after v1.Port) string {
	now := "groups " + dash(strings.Join(after.SecurityGroups, ","))
	if slices.Equal(before.SecurityGroups, after.SecurityGroups) {
		return now
	}
	return now + ", were " + dash(strings.Join(before.SecurityGroups, ","))
}

// completeSetGroups completes the port first, then the groups.
func completeSetGroups(app *App, k kind[v1.Port]) cobra.CompletionFunc {
	ports, groups := completeNames(app, k, 1), completeNames(app, securityGroupKind(), -1)
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return ports(cmd, args, toComplete)
		}
		return groups(cmd, args[1:], toComplete)
	}
}

func newPortListCmd(app *App, k kind[v1.Port]) *cobra.Command {
	var network string
	cmd := &cobra.Command{
		Use:     "list [--network NET]",
		Aliases: []string{"ls"},
		Short:   "List ports, all or one network's",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			ports, err := c.Ports(ctx, network)
			if err != nil {
				return err
			}
			return printList(app, k, ports)
		},
	}
	cmd.Flags().StringVar(&network, "network", "", "only the ports of this network")
	_ = cmd.RegisterFlagCompletionFunc("network", completeNetworks(app))
	return cmd
}

// completeNetns offers the namespaces `ip netns` knows; a path can be typed.
func completeNetns(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

package cli

import (
	"net/http"
	"reflect"
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
		header: []string{"NAME", "SUBNET", "GATEWAY", "MTU", "MASQ", "DHCP", "ID"},
		row: func(n v1.Network) []string {
			return []string{n.Name, n.Subnet.String(), n.Gateway.String(), strconv.Itoa(n.MTU), yesNo(n.Masquerade), yesNo(n.DHCP), strconv.Itoa(n.ID)}
		},
		// What the row has no room for: what the network's DHCP hands out.
		details: func(n v1.Network) []string {
			return []string{"dhcp: " + yesNo(n.DHCP), "dns: " + dash(strings.Join(n.DNS, ", ")), "domain: " + dash(n.Domain)}
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
	cmd.AddCommand(newNetworkCreateCmd(app, k), newNetworkSetCmd(app, k), newGetCmd(app, k), newListCmd(app, k), newDeleteCmd(app, k))
	return cmd
}

func newNetworkCreateCmd(app *App, k kind[v1.Network]) *cobra.Command {
	var spec v1.NetworkSpec
	var dhcp bool
	cmd := &cobra.Command{
		Use:   "create NAME --subnet CIDR",
		Short: "Create a network, or confirm one with the same spec exists",
		Long: `Create a network. Creating it again with the same spec changes nothing
("unchanged"); a spec that differs only in --dhcp, --dns or --domain changes
them in place ("changed"): create states the whole spec, so a flag left out
takes its default (no DNS servers, no domain, DHCP on) — set changes one
field and keeps the others. Any other difference is a conflict (exit 4):
delete and re-create the network to change it.

The network answers DHCP on its ports (docs/DHCP.md) unless --dhcp=false:
the port's own address, the gateway as router, the MTU, and --dns (repeat
the flag, or separate by commas; the first is the primary) and --domain.`,
		Example: `  vnetctl network create blue --subnet 10.10.0.0/24
  vnetctl network create red --subnet 10.20.0.0/24 --gateway 10.20.0.254 --masquerade
  vnetctl network create lab --subnet 10.30.0.0/24 --dns 10.30.0.53,9.9.9.9 --domain lab.example`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := app.Client()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("dhcp") {
				spec.DHCP = &dhcp
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			// Only to tell "unchanged" from "changed": both answer 200.
			before, err := c.Network(ctx, args[0])
			if err != nil && client.StatusOf(err) != http.StatusNotFound {
				return err
			}
			n, created, err := c.PutNetwork(ctx, args[0], spec)
			if err != nil {
				return err
			}
			return printApplied(app, k, n, networkOutcome(created, before, n), "")
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Subnet, "subnet", "", "IPv4 subnet in CIDR form, /8 to /30 (required)")
	f.StringVar(&spec.Gateway, "gateway", "", "gateway address (default: the subnet's first host address)")
	f.IntVar(&spec.MTU, "mtu", 0, "MTU, 576 to 9000 (default 1500)")
	f.BoolVar(&spec.Masquerade, "masquerade", false, "let the network reach the host's outside world through SNAT")
	dhcpFlags(cmd, &dhcp, &spec.DNS, &spec.Domain)
	_ = cmd.MarkFlagRequired("subnet")
	for _, name := range []string{"subnet", "gateway", "mtu", "dns", "domain"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	return cmd
}

// dhcpFlags are the flags of a network's DHCP fields, create's and set's.
func dhcpFlags(cmd *cobra.Command, dhcp *bool, dns *[]string, domain *string) {
	f := cmd.Flags()
	f.BoolVar(dhcp, "dhcp", true, "answer DHCP on the network's ports; =false turns it off")
	f.StringSliceVar(dns, "dns", nil, "a DNS server DHCP hands out, in order (repeat the flag, or separate by commas; at most 8)")
	f.StringVar(domain, "domain", "", "the domain DHCP hands out, e.g. lab.example")
}

func newNetworkSetCmd(app *App, k kind[v1.Network]) *cobra.Command {
	var (
		dhcp            bool
		dns             []string
		domain          string
		noDNS, noDomain bool
	)
	cmd := &cobra.Command{
		Use:   "set NAME [--dhcp=BOOL] [--dns IP... | --no-dns] [--domain D | --no-domain]",
		Short: "Change a network's DHCP, DNS servers or domain in place",
		Long: `Change what the network's DHCP hands out, or whether it answers at all,
in place: its ports keep their links, addresses and connections. Clients see
new DNS servers or a new domain when they next renew (docs/DHCP.md). The
flags left out keep their values. It is a PUT of the network's own spec with
only these fields changed (docs/API.md, "Changing a network in place").`,
		Example: `  vnetctl network set blue --dns 10.10.0.53 --dns 9.9.9.9
  vnetctl network set blue --no-dns --domain lab.example
  vnetctl network set blue --dhcp=false`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNames(app, k, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			before, err := c.Network(ctx, args[0])
			if err != nil {
				return err
			}
			spec := networkSpecOf(before)
			if fl.Changed("dhcp") {
				spec.DHCP = &dhcp
			}
			if fl.Changed("dns") || noDNS {
				spec.DNS = dns
			}
			if fl.Changed("domain") || noDomain {
				spec.Domain = domain
			}
			n, created, err := c.PutNetwork(ctx, args[0], spec)
			if err != nil {
				return err
			}
			return printApplied(app, k, n, networkOutcome(created, before, n), "")
		},
	}
	dhcpFlags(cmd, &dhcp, &dns, &domain)
	f := cmd.Flags()
	f.BoolVar(&noDNS, "no-dns", false, "hand out no DNS servers")
	f.BoolVar(&noDomain, "no-domain", false, "hand out no domain")
	cmd.MarkFlagsMutuallyExclusive("dns", "no-dns")
	cmd.MarkFlagsMutuallyExclusive("domain", "no-domain")
	for _, name := range []string{"dns", "domain"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	return cmd
}

// networkSpecOf is the spec a network was made with: a PUT of it changes
// nothing.
func networkSpecOf(n v1.Network) v1.NetworkSpec {
	return v1.NetworkSpec{Subnet: n.Subnet.String(), Gateway: n.Gateway.String(), MTU: n.MTU, Masquerade: n.Masquerade,
		DHCP: &n.DHCP, DNS: n.DNS, Domain: n.Domain}
}

// networkOutcome names what a network PUT did: a 200 is "changed" when the
// network it answered differs from the one before (its DHCP fields changed
// in place).
func networkOutcome(created bool, before, after v1.Network) string {
	if !created && !reflect.DeepEqual(before, after) {
		return "changed"
	}
	return outcome(created)
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

package cli

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func newTraceCmd(app *App) *cobra.Command {
	var (
		q                 v1.Query
		to, src, fromAddr string
		dport             int
		showRaw           bool
	)
	cmd := &cobra.Command{
		Use:   "trace (--from PORT | --from-address ADDR) --to IP [--proto icmp|tcp|udp] [--dport N]",
		Short: "Show what a packet a port sends does, and why",
		Long: `Build the packet PORT would send to IP and show its way through the datapath:
each table (or, on Linux, route and nftables chain) it meets, which network,
router or port that rule belongs to, and the verdict: delivered to a port,
broadcast, answered by a gateway, handed to the host for masquerade, or
dropped and why.

On OVS the packet goes through the bridge's real flow tables (ovs-vswitchd's
ofproto/trace); nothing is sent. On Linux the answer is best-effort, from the
kernel's routes and the rules ovs-vnet installs.

--src and --src-mac forge the source, to see the anti-spoofing rules at work.

--from-address ADDR instead of --from traces a packet from outside the host,
sent to one of its addresses or a floating IP: the step the host's NAT takes
(which floating IP or port forward translates it, or none), then the
translated packet entering the networks from the host. Whether the outside
routes the address to the host, and the host's other firewalls, are not seen.`,
		Example: `  vnetctl trace --from web1 --to 10.20.0.2
  vnetctl trace --from web1 --to 10.10.0.3 --proto tcp --dport 80
  vnetctl trace --from web1 --to 10.10.0.3 --src 10.10.0.99   # spoofed: dropped
  vnetctl trace --from-address 198.51.100.2 --to 203.0.113.50 --proto tcp --dport 80`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if q.To, err = netip.ParseAddr(to); err != nil {
				return usageErrorf("--to %q: want an IPv4 address", to)
			}
			if src != "" {
				if q.Src, err = netip.ParseAddr(src); err != nil {
					return usageErrorf("--src %q: want an IPv4 address", src)
				}
			}
			if fromAddr != "" {
				if q.FromAddress, err = netip.ParseAddr(fromAddr); err != nil {
					return usageErrorf("--from-address %q: want an IPv4 address", fromAddr)
				}
			}
			if dport < 0 || dport > 65535 {
				return usageErrorf("--dport %d: want 1-65535", dport)
			}
			q.DPort = uint16(dport)
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
			res, err := c.Trace(ctx, q)
			if err != nil {
				return err
			}
			if format == OutputJSON {
				return app.PrintJSON(res)
			}
			return app.Printf("%s", formatTrace(res, showRaw))
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.From, "from", "", "the port that sends")
	f.StringVar(&fromAddr, "from-address", "", "an address outside the host that sends, instead of a port")
	f.StringVar(&to, "to", "", "destination IPv4 address (required)")
	f.StringVar(&q.Proto, "proto", v1.ProtoICMP, "icmp (an echo request), tcp or udp")
	f.IntVar(&dport, "dport", 0, "destination port, for tcp and udp")
	f.StringVar(&src, "src", "", "source address instead of the port's own")
	f.StringVar(&q.SrcMAC, "src-mac", "", "source MAC instead of the port's own")
	f.BoolVar(&showRaw, "raw", false, "also print the datapath's own trace (ofproto/trace)")
	cmd.MarkFlagsOneRequired("from", "from-address")
	cmd.MarkFlagsMutuallyExclusive("from", "from-address")
	cmd.MarkFlagsMutuallyExclusive("from-address", "src")
	cmd.MarkFlagsMutuallyExclusive("from-address", "src-mac")
	_ = cmd.MarkFlagRequired("to")
	_ = cmd.RegisterFlagCompletionFunc("from", completeNames(app, portKind(), -1))
	_ = cmd.RegisterFlagCompletionFunc("proto", cobra.FixedCompletions([]string{v1.ProtoICMP, v1.ProtoTCP, v1.ProtoUDP}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// formatTrace renders a trace for people: the packet, one row per step with
// its actions, and the verdict in words.
func formatTrace(res v1.Result, raw bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Packet:  %s\n", res.Packet)
	if res.BestEffort {
		fmt.Fprintf(&b, "         (%s backend: best-effort, from the kernel's routes and ovs-vnet's rules; no packet was traced)\n", res.Backend)
	}
	b.WriteString("\n")
	rows := make([][]string, 0, len(res.Steps))
	for _, s := range res.Steps {
		table := "-"
		if s.Table >= 0 {
			table = strconv.Itoa(s.Table)
		}
		actions := strings.Join(s.Actions, " ")
		if s.Drop != "" {
			actions += "   [drop: " + s.Drop + "]"
		}
		rows = append(rows, []string{table, s.Stage, dash(s.Owner), dash(s.Match), dash(actions)})
	}
	_ = writeTable(&b, []string{"TABLE", "STAGE", "OWNER", "MATCH", "ACTIONS"}, rows)
	fmt.Fprintf(&b, "\nVerdict: %s", res.Summary)
	if res.Reason != "" {
		fmt.Fprintf(&b, " [reason: %s]", res.Reason)
	}
	b.WriteString("\n")
	if raw && res.Raw != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(res.Raw, "\n"))
	}
	return b.String()
}

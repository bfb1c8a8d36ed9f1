package linux

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// nftTable is the only nftables table this backend writes. Everything in it is
// ours; nothing outside it is ever read or changed.
const nftTable = "ovs_vnet"

// Ruleset renders the whole of our table for the given networks as an `nft -f`
// script that replaces the table atomically (nft applies a file as one
// transaction). With no networks the table is removed.
//
// Isolation: a network's bridge may forward only to itself (br_netfilter sends
// bridged IPv4 through the forward hook with iif = oif = the bridge), and from a
// network the host answers only on that network's own gateway address.
func Ruleset(prefix string, networks []model.Network) string {
	var b strings.Builder
	// "add table" makes the delete valid when the table does not exist yet.
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", nftTable, nftTable)
	if len(networks) == 0 {
		return b.String()
	}
	sorted := slices.SortedFunc(slices.Values(networks), func(a, b model.Network) int { return strings.Compare(a.Name, b.Name) })
	fmt.Fprintf(&b, "table inet %s {\n", nftTable)
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	for _, n := range sorted {
		br := model.BridgeName(prefix, n.Name)
		fmt.Fprintf(&b, "\t\tiifname %q oifname %q accept comment %q\n", br, br, "network "+n.Name)
		fmt.Fprintf(&b, "\t\tiifname %q drop\n\t\toifname %q drop\n", br, br)
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	for _, n := range sorted {
		fmt.Fprintf(&b, "\t\tiifname %q ip daddr != %s drop comment %q\n", model.BridgeName(prefix, n.Name), n.Gateway, "network "+n.Name)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// applyRuleset loads an nft script.
func applyRuleset(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft -f: %w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

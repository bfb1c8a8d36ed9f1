package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

func securityGroupKind() kind[v1.SecurityGroup] {
	return kind[v1.SecurityGroup]{
		name:   "security-group",
		plural: "security-groups",
		header: []string{"NAME", "ID", "RULES", "PORTS", "REFERENCED-BY"},
		row: func(g v1.SecurityGroup) []string {
			return []string{g.Name, strconv.Itoa(g.ID), strconv.Itoa(len(g.Rules)),
				dash(strings.Join(g.Ports, ",")), dash(strings.Join(g.ReferencedBy, ","))}
		},
		nameOf: func(g v1.SecurityGroup) string { return g.Name },
		get: func(c *client.Client, ctx context.Context, name string) (v1.SecurityGroup, error) {
			return c.SecurityGroup(ctx, name, false)
		},
		list: (*client.Client).SecurityGroups,
		del:  (*client.Client).DeleteSecurityGroup,
	}
}

func newSecurityGroupCmd(app *App) *cobra.Command {
	k := securityGroupKind()
	cmd := groupCmd("security-group", "Create, show and delete security groups (stateful per-port firewalls)", "security-groups", "sg")
	cmd.AddCommand(newSecurityGroupCreateCmd(app, k), newSecurityGroupGetCmd(app, k), newListCmd(app, k), newDeleteCmd(app, k))
	return cmd
}

func newSecurityGroupCreateCmd(app *App, k kind[v1.SecurityGroup]) *cobra.Command {
	var (
		rules   []string
		file    string
		noRules bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME (--rule RULE... | -f FILE | --no-rules)",
		Short: "Create a security group, or replace its rules",
		Long: `Create a security group. Creating it again with the same rules changes
nothing ("unchanged"); with other rules it is replaced live ("replaced"): the
ports that list it are filtered by the new rules at once, and connections the
new rules no longer allow are cut.

A rule is DIRECTION [PROTOCOL [PORTS]] [from|to PEER], one --rule each:
  DIRECTION  ingress (new connections to the group's ports) or egress (from them)
  PROTOCOL   tcp, udp, icmp or any (the default)
  PORTS      N or N-M, tcp and udp only (default: every port)
  PEER       an IPv4 CIDR, group:NAME (the ports listing group NAME, on any
             host) or any (the default); "from" for ingress, "to" for egress

-f takes the API's body instead, in JSON or YAML ({"rules": [...]}, see
docs/API.md); -f - reads it from stdin. --no-rules makes a group that allows
nothing: its ports accept no new connection.`,
		Example: `  vnetctl security-group create web --rule 'ingress tcp 80'
  vnetctl sg create db --rule 'ingress tcp 5432 from group:web' --rule 'ingress icmp from 10.0.0.0/8'
  vnetctl sg create dns-only --rule 'egress udp 53 to 10.10.0.2/32'
  vnetctl sg create db -f db.yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNames(app, k, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := securityGroupSpec(cmd.InOrStdin(), rules, file, noRules)
			if err != nil {
				return err
			}
			c, err := app.Client()
			if err != nil {
				return err
			}
			ctx, cancel := app.Context(cmd)
			defer cancel()
			// Only to tell "unchanged" from "replaced": both answer 200.
			before, err := c.SecurityGroup(ctx, args[0], false)
			if err != nil && client.StatusOf(err) != http.StatusNotFound {
				return err
			}
			g, created, err := c.PutSecurityGroup(ctx, args[0], spec)
			if err != nil {
				return err
			}
			result := outcome(created)
			if !created && !reflect.DeepEqual(before.Rules, g.Rules) {
				result = "replaced"
			}
			return printApplied(app, k, g, result, fmt.Sprintf("%d rules", len(g.Rules)))
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&rules, "rule", "r", nil, "a rule, e.g. 'ingress tcp 5432 from group:web' (repeat the flag)")
	f.StringVarP(&file, "file", "f", "", "the group's spec as JSON or YAML, - for stdin")
	f.BoolVar(&noRules, "no-rules", false, "a group that allows nothing")
	cmd.MarkFlagsMutuallyExclusive("rule", "file", "no-rules")
	_ = cmd.RegisterFlagCompletionFunc("rule", cobra.NoFileCompletions)
	return cmd
}

// securityGroupSpec is the PUT body from exactly one of --rule, -f and
// --no-rules. Asking for one explicitly keeps a forgotten --rule from
// replacing a group's rules by none.
func securityGroupSpec(stdin io.Reader, rules []string, file string, noRules bool) (v1.SecurityGroupSpec, error) {
	switch {
	case file != "":
		return readSecurityGroupSpec(stdin, file)
	case noRules:
		return v1.SecurityGroupSpec{Rules: []v1.Rule{}}, nil
	case len(rules) == 0:
		return v1.SecurityGroupSpec{}, usageErrorf("give the rules: --rule RULE (repeat it), -f FILE, or --no-rules for a group that allows nothing")
	}
	spec := v1.SecurityGroupSpec{Rules: make([]v1.Rule, 0, len(rules))}
	for _, text := range rules {
		r, err := parseRule(text)
		if err != nil {
			return v1.SecurityGroupSpec{}, usageErrorf("--rule %q: %v", text, err)
		}
		spec.Rules = append(spec.Rules, r)
	}
	return spec, nil
}

// readSecurityGroupSpec reads a spec file. YAML is read through JSON, so that
// both take the API's keys and refuse unknown ones alike.
func readSecurityGroupSpec(stdin io.Reader, file string) (v1.SecurityGroupSpec, error) {
	var spec v1.SecurityGroupSpec
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return spec, fmt.Errorf("read security group spec: %w", err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return spec, usageErrorf("-f %s: not JSON or YAML: %v", file, err)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return spec, usageErrorf("-f %s: %v", file, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, usageErrorf("-f %s: not a security group spec ({\"rules\": [...]}): %v", file, err)
	}
	if spec.Rules == nil {
		return spec, usageErrorf("-f %s: no \"rules\" key; write \"rules\": [] for a group that allows nothing", file)
	}
	return spec, nil
}

// parseRule reads the rule text of --rule: DIRECTION [PROTOCOL [PORTS]]
// [from|to PEER]. Only its shape is checked here; the daemon validates the
// values, so its messages are the one place that says what a value may be.
func parseRule(text string) (v1.Rule, error) {
	words := strings.Fields(text)
	var r v1.Rule
	if len(words) == 0 {
		return r, fmt.Errorf("empty rule")
	}
	r.Direction, words = words[0], words[1:]
	peerWord := "from"
	switch r.Direction {
	case v1.DirIngress:
	case v1.DirEgress:
		peerWord = "to"
	default:
		return r, fmt.Errorf("starts with %q: want ingress or egress", r.Direction)
	}
	if len(words) > 0 && words[0] != "from" && words[0] != "to" {
		r.Protocol, words = words[0], words[1:]
		if len(words) > 0 && words[0] != "from" && words[0] != "to" {
			r.Ports, words = words[0], words[1:]
		}
	}
	if len(words) == 0 {
		return r, nil
	}
	if words[0] != peerWord {
		return r, fmt.Errorf("%s rules name their peer with %q, not %q", r.Direction, peerWord, words[0])
	}
	if len(words) != 2 {
		return r, fmt.Errorf("want one peer after %q (a CIDR, group:NAME or any), got %d words", peerWord, len(words)-1)
	}
	switch peer := words[1]; {
	case peer == "any":
	case strings.HasPrefix(peer, "group:"):
		r.RemoteGroup = strings.TrimPrefix(peer, "group:")
	default:
		r.Remote = peer
	}
	return r, nil
}

// ruleText is a rule as --rule takes it, so what get prints can be pasted back.
func ruleText(r v1.Rule) string {
	words := []string{r.Direction, cmp.Or(r.Protocol, v1.ProtoAny)}
	if r.Ports != "" {
		words = append(words, r.Ports)
	}
	peerWord := "from"
	if r.Direction == v1.DirEgress {
		peerWord = "to"
	}
	switch {
	case r.RemoteGroup != "":
		words = append(words, peerWord, "group:"+r.RemoteGroup)
	case r.Remote != "":
		words = append(words, peerWord, r.Remote)
	}
	return strings.Join(words, " ")
}

func newSecurityGroupGetCmd(app *App, k kind[v1.SecurityGroup]) *cobra.Command {
	var stats bool
	cmd := &cobra.Command{
		Use:   "get NAME [--stats]",
		Short: "Show one security group and its rules",
		Long: `Show a security group: the ports that list it, the groups whose rules name
it, and its rules by index, the index that the metric
ovs_vnet_security_group_rule_packets_total{rule} and vnetctl trace name.
--stats adds what each rule allowed on the daemon's host (packets, bytes),
counted since the group's rules last changed there.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNames(app, k, 1),
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
			g, err := c.SecurityGroup(ctx, args[0], stats)
			if err != nil {
				return err
			}
			if format != OutputTable {
				return printOne(app, k, g)
			}
			return app.Printf("%s", formatSecurityGroup(k, g, stats))
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "show each rule's hits on the daemon's host")
	return cmd
}

// formatSecurityGroup renders a group for people: its row as list shows it,
// then its rules, one a line, with their hits when asked for.
func formatSecurityGroup(k kind[v1.SecurityGroup], g v1.SecurityGroup, stats bool) string {
	var b strings.Builder
	_ = writeTable(&b, k.header, [][]string{k.row(g)})
	b.WriteString("\n")
	if len(g.Rules) == 0 {
		b.WriteString("No rules: the group allows nothing.\n")
		return b.String()
	}
	header := []string{"INDEX", "RULE"}
	if stats {
		header = append(header, "PACKETS", "BYTES")
	}
	hits := map[int]v1.RuleHits{}
	for _, h := range g.Hits {
		hits[h.Rule] = h
	}
	rows := make([][]string, len(g.Rules))
	for i, r := range g.Rules {
		rows[i] = []string{strconv.Itoa(i), ruleText(r)}
		if stats {
			rows[i] = append(rows[i], strconv.FormatUint(hits[i].Packets, 10), strconv.FormatUint(hits[i].Bytes, 10))
		}
	}
	_ = writeTable(&b, header, rows)
	return b.String()
}

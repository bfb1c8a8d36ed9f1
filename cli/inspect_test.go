package cli

import (
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestFormatFlows(t *testing.T) {
	flows := []v1.Flow{
		{OwnerKind: "port", Owner: "web1", Table: 0, Packets: 3, Text: "cookie=0x7604000000010000, table=0, n_packets=3, priority=100,in_port=1 actions=goto_table:10"},
		{OwnerKind: "pipeline", Table: 0, Text: "cookie=0x7601000000000000, table=0, n_packets=0, priority=0 actions=drop", Drop: "unknown_port"},
		{OwnerKind: "routes", Owner: "blue", Table: 30, Packets: 1, Text: "cookie=0x7603000000010000, table=30, priority=200"},
		{OwnerKind: "network", Owner: "blue", Table: 20, Text: "cookie=0x7602000000010000, table=20, priority=100"},
		{OwnerKind: "port", Owner: "web1", Table: 10, Packets: 2, Text: "cookie=0x7604000000010000, table=10, priority=100,in_port=1 actions=drop", Drop: "spoofed"},
	}
	want := `# pipeline: 1 flows, 0 packets
 cookie=0x7601000000000000, table=0, n_packets=0, priority=0 actions=drop   # drop: unknown_port

# network blue: 1 flows, 0 packets
 cookie=0x7602000000010000, table=20, priority=100

# routes of network blue: 1 flows, 1 packets
 cookie=0x7603000000010000, table=30, priority=200

# port web1: 2 flows, 5 packets
 cookie=0x7604000000010000, table=0, n_packets=3, priority=100,in_port=1 actions=goto_table:10
 cookie=0x7604000000010000, table=10, priority=100,in_port=1 actions=drop   # drop: spoofed
`
	if got := formatFlows(flows); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := formatFlows(nil); got != "no flows\n" {
		t.Errorf("no flows: %q", got)
	}
}

func TestFormatTrace(t *testing.T) {
	res := v1.Result{
		Backend: "ovs", Packet: "icmp,in_port=1,nw_src=10.61.0.99",
		Steps: []v1.Step{
			{Table: 0, Stage: "classify", Priority: 100, Owner: "port web1", Match: "in_port=1", Actions: []string{"set_field:0x1->reg0", "goto_table:10"}},
			{Table: 10, Stage: "spoof_guard", Priority: 100, Owner: "port web1", Match: "in_port=1", Actions: []string{"drop"}, Drop: "spoofed"},
		},
		Verdict: v1.Dropped, Reason: "spoofed", Summary: "dropped in table 10 (spoof_guard)",
		Raw: "bridge(\"br-vnet\")\n",
	}
	got := formatTrace(res, true)
	for _, want := range []string{
		"Packet:  icmp,in_port=1,nw_src=10.61.0.99\n",
		"TABLE   STAGE         OWNER       MATCH       ACTIONS\n",
		"10      spoof_guard   port web1   in_port=1   drop   [drop: spoofed]\n",
		"Verdict: dropped in table 10 (spoof_guard) [reason: spoofed]\n",
		"bridge(\"br-vnet\")\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("trace output lacks %q:\n%s", want, got)
		}
	}
	res.BestEffort, res.Backend, res.Raw = true, "linux", ""
	res.Steps = []v1.Step{{Table: -1, Stage: "route in netns web1", Actions: []string{"10.0.0.1 dev eth0"}}}
	if got := formatTrace(res, false); !strings.Contains(got, "best-effort") || !strings.Contains(got, "-       route in netns web1") {
		t.Errorf("linux trace:\n%s", got)
	}
}

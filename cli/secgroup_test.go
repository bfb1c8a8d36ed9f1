package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		text string
		want v1.Rule
		bad  bool
	}{
		{text: "ingress", want: v1.Rule{Direction: "ingress"}},
		{text: "ingress icmp", want: v1.Rule{Direction: "ingress", Protocol: "icmp"}},
		{text: " ingress  tcp 80 ", want: v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "80"}},
		{text: "ingress tcp 8000-8080 from 10.0.0.0/8", want: v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "8000-8080", Remote: "10.0.0.0/8"}},
		{text: "ingress tcp 5432 from group:web", want: v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "5432", RemoteGroup: "web"}},
		{text: "ingress from group:admin", want: v1.Rule{Direction: "ingress", RemoteGroup: "admin"}},
		{text: "egress udp 53 to 10.10.0.2/32", want: v1.Rule{Direction: "egress", Protocol: "udp", Ports: "53", Remote: "10.10.0.2/32"}},
		{text: "egress any to any", want: v1.Rule{Direction: "egress", Protocol: "any"}},
		// Values are the daemon's to judge; only the shape is checked here.
		{text: "ingress sctp 99999", want: v1.Rule{Direction: "ingress", Protocol: "sctp", Ports: "99999"}},
		{text: "", bad: true},
		{text: "in tcp 80", bad: true},
		{text: "ingress tcp 80 to 10.0.0.0/8", bad: true},
		{text: "egress tcp 80 from 10.0.0.0/8", bad: true},
		{text: "ingress tcp 80 from", bad: true},
		{text: "ingress tcp 80 from a b", bad: true},
		{text: "ingress tcp 80 443", bad: true},
	} {
		got, err := parseRule(tc.text)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("%q: %+v, %v; want %+v bad=%v", tc.text, got, err, tc.want, tc.bad)
		}
		if tc.bad || tc.want.Protocol == "sctp" {
			continue
		}
		// What get prints reads back as the same rule (in canonical form).
		canon := tc.want
		if canon.Protocol == "" {
			canon.Protocol = v1.ProtoAny
		}
		if back, err := parseRule(ruleText(canon)); err != nil || back != canon {
			t.Errorf("%q: ruleText %q reads back as %+v, %v", tc.text, ruleText(canon), back, err)
		}
	}
}

func TestSecurityGroupCommands(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "security-group", "list"), 0, "", "No security-groups found.\n")
	check(t, f.vnetctl(t, nil, "sg", "create", "web"), ExitUsage, "", "give the rules: --rule RULE")
	check(t, f.vnetctl(t, nil, "sg", "create", "web", "--rule", "ingress tcp 80", "--no-rules"), ExitUsage, "", "none of the others can be")
	check(t, f.vnetctl(t, nil, "sg", "create", "web", "--rule", "ingres tcp 80"), ExitUsage, "", `Error: --rule "ingres tcp 80": starts with "ingres"`)
	check(t, f.vnetctl(t, nil, "sg", "create", "web", "--rule", "ingress tcp 80"), 0, "security-group web created (1 rules)\n", "")
	check(t, f.vnetctl(t, nil, "sg", "create", "web", "--rule", "ingress tcp 80"), 0, "security-group web unchanged (1 rules)\n", "")
	check(t, f.vnetctl(t, nil, "sg", "create", "web", "-r", "ingress tcp 80", "-r", "ingress tcp 443"), 0, "security-group web replaced (2 rules)\n", "")
	check(t, f.vnetctl(t, nil, "sg", "create", "db", "--rule", "ingress tcp 90-80"), ExitError, "", `Error: invalid: rules[0].ports: "90-80" is not a port range`)
	check(t, f.vnetctl(t, nil, "sg", "create", "db", "--rule", "ingress tcp 5432 from group:nope"), ExitNotFound, "", `not found: security group "nope" (HTTP 404)`)

	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "db.yaml")
	if err := os.WriteFile(yamlFile, []byte("rules:\n  - direction: ingress\n    protocol: tcp\n    ports: \"5432\"\n    remote_group: web\n  - {direction: ingress, protocol: icmp, remote: 10.0.0.0/8}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(t, f.vnetctl(t, nil, "sg", "create", "db", "-f", yamlFile, "-o", "name"), 0, "security-group/db\n", "")
	badFile := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badFile, []byte(`{"rules": [{"direction": "ingress", "port": "80"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	check(t, f.vnetctl(t, nil, "sg", "create", "x", "-f", badFile), ExitUsage, "", `unknown field "port"`)
	if err := os.WriteFile(badFile, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	check(t, f.vnetctl(t, nil, "sg", "create", "x", "-f", badFile), ExitUsage, "", `no "rules" key`)
	check(t, f.vnetctl(t, nil, "sg", "create", "closed", "--no-rules"), 0, "security-group closed created (0 rules)\n", "")

	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "db1", "--network", "blue", "--netns", "db1", "--security-group", "db,closed"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "db2", "--network", "blue", "--netns", "db2", "--security-group", "nope"), ExitNotFound, "", `not found: security group "nope"`)

	check(t, f.vnetctl(t, nil, "sg", "ls"), 0, ""+
		"NAME     ID   RULES   PORTS   REFERENCED-BY\n"+
		"closed   3    0       db1     -\n"+
		"db       2    2       db1     -\n"+
		"web      1    2       -       db\n", "")
	check(t, f.vnetctl(t, nil, "sg", "get", "db"), 0, ""+
		"NAME   ID   RULES   PORTS   REFERENCED-BY\n"+
		"db     2    2       db1     -\n"+
		"\n"+
		"INDEX   RULE\n"+
		"0       ingress tcp 5432 from group:web\n"+
		"1       ingress icmp from 10.0.0.0/8\n", "")
	check(t, f.vnetctl(t, nil, "sg", "get", "db", "--stats"), 0, ""+
		"NAME   ID   RULES   PORTS   REFERENCED-BY\n"+
		"db     2    2       db1     -\n"+
		"\n"+
		"INDEX   RULE                              PACKETS   BYTES\n"+
		"0       ingress tcp 5432 from group:web   1         100\n"+
		"1       ingress icmp from 10.0.0.0/8      2         200\n", "")
	check(t, f.vnetctl(t, nil, "sg", "get", "closed"), 0, ""+
		"NAME     ID   RULES   PORTS   REFERENCED-BY\n"+
		"closed   3    0       db1     -\n"+
		"\n"+
		"No rules: the group allows nothing.\n", "")
	check(t, f.vnetctl(t, nil, "sg", "get", "nope"), ExitNotFound, "", `Error: not found: security group "nope" (HTTP 404)`)

	// Groups change in place, by set-groups or by create with other groups.
	check(t, f.vnetctl(t, nil, "port", "set-groups", "db1", "db"), 0, "port db1 groups changed (groups db, were closed,db)\n", "")
	check(t, f.vnetctl(t, nil, "port", "set-groups", "db1", "db"), 0, "port db1 unchanged (groups db)\n", "")
	check(t, f.vnetctl(t, nil, "port", "create", "db1", "--network", "blue", "--netns", "db1", "--security-group", "web", "--security-group", "db"),
		0, "port db1 groups changed (groups db,web, were db)\n", "")
	check(t, f.vnetctl(t, nil, "port", "set-groups", "db1"), 0, "port db1 groups changed (groups -, were db,web)\n", "")
	check(t, f.vnetctl(t, nil, "port", "set-groups", "nope", "db"), ExitNotFound, "", `not found: port "nope"`)
	check(t, f.vnetctl(t, nil, "port", "set-groups", "db1", "db", "-o", "json"), 0, "*", "")
	if p := f.ports["db1"]; !reflect.DeepEqual(p.SecurityGroups, []string{"db"}) {
		t.Fatalf("db1's groups are %v", p.SecurityGroups)
	}

	check(t, f.vnetctl(t, nil, "sg", "delete", "db"), ExitConflict, "", `conflict: security group "db" is used by ports db1`)
	check(t, f.vnetctl(t, nil, "sg", "rm", "closed", "nope"), ExitNotFound, "security-group closed deleted\n", `not found: security group "nope"`)
}

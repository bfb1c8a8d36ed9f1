package e2e

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// TestSecurityGroupSurface drives security groups the way users reach them,
// on each backend: groups made with vnetctl, a container attached by the CNI
// plugin with security_groups in its configuration, a port's groups changed
// in place by vnetctl and by the plugin, a denied ping counted as a policy
// drop and an allowed one under its rule in /metrics (which promtool
// accepts), and vnetctl's get --stats and trace naming the rule; then the
// README's example.
func TestSecurityGroupSurface(t *testing.T) {
	bins := buildCNI(t)
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) { runSecurityGroupSurface(t, bins, bc) })
	}
}

func runSecurityGroupSurface(t *testing.T, bins cniBins, bc backendCase) {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	sock := filepath.Join(t.TempDir(), "api.sock")
	d := startSocketDaemon(t, hostNS, sock, args...)
	cli := newVnetctl(t, "VNETCTL_SERVER=unix:"+sock)

	cli.ok("network", "create", "blue", "--subnet", "10.97.0.0/24")
	// client allows nothing in; server lets client's ports ping it.
	if out := cli.ok("security-group", "create", "client", "--no-rules"); out != "security-group client created (0 rules)\n" {
		t.Errorf("create client: %q", out)
	}
	if out := cli.ok("sg", "create", "server", "--rule", "ingress icmp from group:client"); out != "security-group server created (1 rules)\n" {
		t.Errorf("create server: %q", out)
	}
	nsA, nsX := newNetns(t, "vnt-sga-"), newNetns(t, "vnt-sgx-")
	cli.ok("port", "create", "a", "--network", "blue", "--netns", nsA, "--ip", "10.97.0.11", "--security-group", "client")
	cli.ok("port", "create", "x", "--network", "blue", "--netns", nsX, "--ip", "10.97.0.13")

	// The container: its configuration names the server group.
	e := newCNIEnv(t, bins, sock, "")
	e.conf["network"] = "blue"
	e.conf["security_groups"] = []string{"server"}
	e.write("10-ovs-vnet.conf")
	nsS := newNetns(t, "vnt-sgs-")
	pathS := "/var/run/netns/" + nsS
	mustTool(t, e, "add", pathS)
	s := cniPort(t, d, pathS)
	if !reflect.DeepEqual(s.SecurityGroups, []string{"server"}) {
		t.Fatalf("the CNI port's groups: %v", s.SecurityGroups)
	}
	ipS := strings.Split(s.IP, "/")[0]
	cli.run("sg", "delete", "server").fails(t, 4, `security group "server" is used by port`, "(HTTP 409)")

	before := scrape(t, d)
	ping(t, nsA, ipS, true)           // a is in client: server's rule 0
	ping(t, nsX, ipS, false)          // x is in no group: nothing allows it
	ping(t, nsS, "10.97.0.11", false) // a's group allows nothing in
	// The host reaches a port only through a port forward or a floating
	// IP, on both backends (docs/API.md, Security groups).
	ping(t, hostNS, "10.97.0.11", false)
	rule := map[string]string{"group": "server", "rule": "0"}
	policy := map[string]string{"reason": v1.DropPolicy}
	var body []byte
	waitFor(t, "the rule's and the policy drops' counters to count the pings", func() bool {
		var after map[string]*dto.MetricFamily
		body, after = scrapeBody(t, d)
		return sample(after, "ovs_vnet_security_group_rule_packets_total", rule)-sample(before, "ovs_vnet_security_group_rule_packets_total", rule) >= 2 &&
			sample(after, "ovs_vnet_drop_packets_total", policy)-sample(before, "ovs_vnet_drop_packets_total", policy) >= 4
	})
	promtool(t, body)

	// get --stats shows the hits, trace names the rule and the drop.
	var g v1.SecurityGroup
	cli.json(&g, "sg", "get", "server", "--stats")
	if len(g.Hits) != 1 || g.Hits[0].Rule != 0 || g.Hits[0].Packets < 2 || !reflect.DeepEqual(g.Ports, []string{s.Name}) {
		t.Errorf("sg get server --stats: %+v", g)
	}
	if out := cli.ok("sg", "get", "server", "--stats"); !strings.Contains(out, "\n0       ingress icmp from group:client   ") {
		t.Errorf("sg get server --stats:\n%s", out)
	}
	if out := cli.ok("trace", "--from", "a", "--to", ipS); !strings.Contains(out, "rule 0 of security group server") {
		t.Errorf("trace of an allowed ping names no rule:\n%s", out)
	}
	if out := cli.ok("trace", "--from", "x", "--to", ipS); !strings.Contains(out, "[reason: policy]") {
		t.Errorf("trace of a denied ping:\n%s", out)
	}

	// In place: a's groups dropped by vnetctl, the container's by its
	// configuration at the next ADD; both keep their addresses.
	if out := cli.ok("port", "set-groups", "a"); out != "port a groups changed (groups -, were client)\n" {
		t.Errorf("set-groups: %q", out)
	}
	ping(t, nsS, "10.97.0.11", true)
	e.conf["security_groups"] = []string{}
	e.write("10-ovs-vnet.conf")
	mustTool(t, e, "add", pathS)
	if again := cniPort(t, d, pathS); again.IP != s.IP || len(again.SecurityGroups) != 0 {
		t.Fatalf("after an ADD without groups: %+v", again)
	}
	ping(t, nsX, ipS, true)

	cli.ok("sg", "delete", "server", "client")
	mustTool(t, e, "del", pathS)
	cli.ok("port", "delete", "a", "x")
	cli.ok("network", "delete", "blue")

	workloads := readmeSecurityGroups(t, cli)
	d.stop()
	assertNothingLeft(t, hostNS, box, d.stateDir, append(workloads, nsA, nsX, nsS)...)
}

// readmeSecurityGroups runs the README's security-group example as written
// (but for the subnets, 10.95/10.96 for 10.10/10.20) on the README's
// topology, made with vnetctl, and cleans it up; it returns the namespaces.
func readmeSecurityGroups(t *testing.T, cli vnetctl) []string {
	web1, web2, db1 := newNetns(t, "vnt-rw1-"), newNetns(t, "vnt-rw2-"), newNetns(t, "vnt-rdb-")
	cli.ok("network", "create", "blue", "--subnet", "10.95.0.0/24")
	cli.ok("network", "create", "red", "--subnet", "10.96.0.0/24", "--masquerade")
	cli.ok("port", "create", "web1", "--network", "blue", "--netns", web1)
	cli.ok("port", "create", "web2", "--network", "blue", "--netns", web2, "--ip", "10.95.0.20")
	cli.ok("port", "create", "db1", "--network", "red", "--netns", db1)
	cli.ok("router", "create", "r1", "--network", "blue", "--network", "red")

	cli.ok("security-group", "create", "web", "--rule", "ingress tcp 80")
	cli.ok("security-group", "create", "db", "--rule", "ingress tcp 5432 from group:web", "--rule", "ingress icmp from group:web")
	cli.ok("port", "set-groups", "web1", "web")
	cli.ok("port", "set-groups", "db1", "db")
	ping(t, web1, "10.96.0.2", true)
	ping(t, web2, "10.96.0.2", false)
	if out := cli.ok("trace", "--from", "web2", "--to", "10.96.0.2"); !strings.Contains(out, "[reason: policy]") {
		t.Errorf("trace --from web2:\n%s", out)
	}
	if out := cli.ok("security-group", "get", "db", "--stats"); !strings.Contains(out, "\n1       ingress icmp from group:web       ") {
		t.Errorf("security-group get db --stats:\n%s", out)
	}
	cli.ok("port", "set-groups", "db1")
	ping(t, web2, "10.96.0.2", true)

	cli.ok("router", "delete", "r1")
	cli.ok("port", "delete", "web1", "web2", "db1")
	cli.ok("security-group", "delete", "db", "web")
	cli.ok("network", "delete", "blue", "red")
	return []string{web1, web2, db1}
}

// sample is the value of family name's series with exactly labels (0 if
// none).
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		if reflect.DeepEqual(have, labels) {
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return 0
}

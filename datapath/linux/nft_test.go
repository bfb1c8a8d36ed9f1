package linux

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"

	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

var (
	blue = model.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.61.0.0/24"), Gateway: netip.MustParseAddr("10.61.0.1")}
	red  = model.Network{Name: "red", Subnet: netip.MustParsePrefix("10.62.0.0/24"), Gateway: netip.MustParseAddr("10.62.0.254")}
	// green masquerades; its subnet is written unmasked on purpose.
	green = model.Network{Name: "green", Subnet: netip.MustParsePrefix("10.63.0.9/24"), Gateway: netip.MustParseAddr("10.63.0.1"), Masquerade: true}

	web = model.Port{Name: "web-1", Network: "blue", Type: v1.PortVeth, Netns: "web1", Ifname: "eth0",
		IP: netip.MustParseAddr("10.61.0.5"), MAC: "02:aa:bb:cc:dd:01", HostIfname: model.HostIfname("web-1")}
	vm = model.Port{Name: "vm", Network: "red", Type: v1.PortTap, Ifname: "tap-vm.0",
		IP: netip.MustParseAddr("10.62.0.7"), MAC: "02:aa:bb:cc:dd:02", HostIfname: "tap-vm.0"}
)

func TestRulesetGolden(t *testing.T) {
	webTarget := model.Target{Port: web.Name, Network: web.Network, IP: web.IP}
	nat := model.NAT{
		Floating: []model.FloatingRule{
			{Name: "pub", Address: netip.MustParseAddr("203.0.113.50"), Target: webTarget},
			{Name: "vmpub", Address: netip.MustParseAddr("203.0.113.51"), Target: model.Target{Port: vm.Name, Network: vm.Network, IP: vm.IP}},
			{Name: "gpub", Address: netip.MustParseAddr("203.0.113.52"), Target: model.Target{Port: "g", Network: "green", IP: netip.MustParseAddr("10.63.0.5")}},
		},
		Forwards: []model.ForwardRule{{Name: "http", Proto: model.ProtoTCP, HostPort: 8080, TargetPort: 80, Target: webTarget}},
	}
	for _, c := range []struct {
		file    string
		nets    []model.Network
		routers []model.Router
		nat     model.NAT
	}{
		{"testdata/two-networks.nft", []model.Network{red, blue}, nil, model.NAT{}},
		{"testdata/empty.nft", nil, nil, model.NAT{}},
		// The router names a network that is gone: it must not appear.
		{"testdata/router-masquerade.nft", []model.Network{red, blue, green},
			[]model.Router{{Name: "r1", Networks: []string{"blue", "green", "gone"}}}, model.NAT{}},
		// Floating IPs of ports of networks that do not masquerade let
		// those ports out, and their replies in; green's need nothing.
		{"testdata/floating.nft", []model.Network{red, blue, green}, nil, nat},
	} {
		nftGolden(t, c.file, "", Ruleset("vnbr", c.nets, c.routers, c.nat))
	}
}

func TestPortRulesGolden(t *testing.T) {
	attach := BridgeSkeleton()
	for _, p := range []model.Port{web, vm} {
		s, err := PortRules(p)
		if err != nil {
			t.Fatal(err)
		}
		attach += s
	}
	nftGolden(t, "testdata/ports-attach.nft", "", attach)

	// Detach must be valid on its own (nothing there) and after the attach.
	detach, err := PortRulesDelete(web)
	if err != nil {
		t.Fatal(err)
	}
	nftGolden(t, "testdata/ports-detach.nft", "", detach)
	nftCheck(t, "attach then detach", attach+detach)

	// Prune as a restarted daemon sees it: web is gone, vm stays, and an
	// element of vm's name points at a stale chain.
	have := bridgeTable{
		elements: map[string]string{web.HostIfname: "port_web-1", vm.HostIfname: "port_vm", "vnetstale": "port_vm"},
		chains:   []string{"port_vm", "port_web-1"},
		counters: []string{"spoof_vm", "spoof_web-1"},
	}
	stale := "add element bridge ovs_vnet ports { \"vnetstale\" : jump port_vm }\n"
	prune := PruneScript(have, []model.Port{vm}, 1)
	nftGolden(t, "testdata/ports-prune.nft", attach+stale, prune)
	nftGolden(t, "testdata/ports-prune-all.nft", attach, PruneScript(have, nil, 0))
}

func TestPortRulesRefuseUnsafeNames(t *testing.T) {
	for _, p := range []model.Port{
		{Name: "a", IP: web.IP, MAC: web.MAC, HostIfname: `ta"p`},
		{Name: "a", IP: web.IP, MAC: web.MAC, HostIfname: ""},
		{Name: "A;", IP: web.IP, MAC: web.MAC, HostIfname: "tap0"},
		{Name: "a", IP: netip.MustParseAddr("fd00::1"), MAC: web.MAC, HostIfname: "tap0"},
		{Name: "a", IP: web.IP, MAC: "nope", HostIfname: "tap0"},
	} {
		if s, err := PortRules(p); err == nil {
			t.Errorf("PortRules(%+v) accepted:\n%s", p, s)
		}
	}
}

func TestParseBridgeTable(t *testing.T) {
	data := `{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "bridge", "name": "ovs_vnet"}},
	{"counter": {"family": "bridge", "name": "spoof_web-1", "table": "ovs_vnet", "packets": 3, "bytes": 180}},
	{"map": {"family": "bridge", "name": "ports", "table": "ovs_vnet", "type": "ifname", "map": "verdict",
	  "elem": [["vnet0123", {"jump": {"target": "port_web-1"}}]]}},
	{"chain": {"family": "bridge", "table": "ovs_vnet", "name": "prerouting", "hook": "prerouting"}},
	{"chain": {"family": "bridge", "table": "ovs_vnet", "name": "port_web-1"}}]}`
	got, err := parseBridgeTable([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if got.elements["vnet0123"] != "port_web-1" || len(got.elements) != 1 ||
		len(got.chains) != 1 || got.chains[0] != "port_web-1" || len(got.counters) != 1 || got.counters[0] != "spoof_web-1" {
		t.Errorf("parsed %+v", got)
	}
}

// nftGolden compares got with the golden file and has nft
// check the script, after before: the state it is meant to be applied to.
func nftGolden(t *testing.T, file, before, got string) {
	t.Helper()
	golden.Check(t, file, got)
	nftCheck(t, file, before+got)
}

// nftCheck has nft itself judge a script: check mode parses it and validates
// it against the kernel as one transaction without committing. It runs in a
// network namespace of its own that dies with the process, so whatever the
// host's tables hold cannot make the check pass or fail.
func nftCheck(t *testing.T, what, script string) {
	t.Helper()
	testbed.Need(t, os.Geteuid() == 0, "root: nft -c needs it")
	cmd := exec.Command("unshare", "--net", "nft", "-c", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("nft -c rejects %s: %v\n%s\n%s", what, err, out, script)
	}
}

package ovs

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestHostRulesetGolden pins the host's rules — the guard of the ports'
// links, masquerade, the admission of translated connections — and checks them with `nft -c`, which parses and
// validates without changing anything.
func TestHostRulesetGolden(t *testing.T) {
	nw := func(name, subnet string, masq bool) model.Network {
		p := netip.MustParsePrefix(subnet)
		return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), Masquerade: masq}
	}
	// Two floating ports, one in a network that does not masquerade: both
	// get out, sorted.
	nat := model.NAT{Floating: []model.FloatingRule{
		{Name: "pub", Address: netip.MustParseAddr("203.0.113.50"), Target: model.Target{Port: "r1", Network: "red", IP: netip.MustParseAddr("10.62.0.5")}},
		{Name: "pub2", Address: netip.MustParseAddr("203.0.113.51"), Target: model.Target{Port: "b1", Network: "blue", IP: netip.MustParseAddr("10.61.0.5")}},
	}, Forwards: []model.ForwardRule{{Name: "web", Proto: model.ProtoTCP, HostPort: 8080, TargetPort: 80,
		Target: model.Target{Port: "r1", Network: "red", IP: netip.MustParseAddr("10.62.0.5")}}}}
	for _, c := range []struct {
		file, got string
	}{
		{"testdata/masquerade.nft", HostRuleset("br-vnet", []model.Network{nw("blue", "10.61.0.0/24", true), nw("red", "10.62.0.0/24", false), nw("pink", "10.64.0.0/16", true)}, model.NAT{})},
		{"testdata/no-masquerade.nft", HostRuleset("br-vnet", []model.Network{nw("red", "10.62.0.0/24", false)}, model.NAT{})},
		{"testdata/floating.nft", HostRuleset("br-vnet", []model.Network{nw("blue", "10.61.0.0/24", true), nw("red", "10.62.0.0/24", false)}, nat)},
		{"testdata/no-network.nft", HostRuleset("br-vnet", nil, model.NAT{})},
		{"testdata/guard.nft", HostEndsGuard()},
	} {
		golden.Check(t, c.file, c.got)
		cmd := exec.Command("nft", "-c", "-f", "-")
		cmd.Stdin = strings.NewReader(c.got)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: nft -c: %v\n%s", c.file, err, out)
		}
	}
}

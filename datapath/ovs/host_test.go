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
// links, masquerade — and checks them with `nft -c`, which parses and
// validates without changing anything.
func TestHostRulesetGolden(t *testing.T) {
	nw := func(name, subnet string, masq bool) model.Network {
		p := netip.MustParsePrefix(subnet)
		return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), Masquerade: masq}
	}
	for _, c := range []struct {
		file, got string
	}{
		{"testdata/masquerade.nft", HostRuleset("br-vnet", []model.Network{nw("blue", "10.61.0.0/24", true), nw("red", "10.62.0.0/24", false), nw("pink", "10.64.0.0/16", true)})},
		{"testdata/no-masquerade.nft", HostRuleset("br-vnet", []model.Network{nw("red", "10.62.0.0/24", false)})},
		{"testdata/no-network.nft", HostRuleset("br-vnet", nil)},
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

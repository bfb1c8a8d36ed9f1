package ovs

import (
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/model"
)

var update = flag.Bool("update", false, "rewrite golden files")

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
		got := c.got
		if *update {
			if err := os.WriteFile(c.file, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs (run with -update after checking):\n%s", c.file, got)
		}
		cmd := exec.Command("nft", "-c", "-f", "-")
		cmd.Stdin = strings.NewReader(got)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: nft -c: %v\n%s", c.file, err, out)
		}
	}
}

package linux

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

func TestRulesetGolden(t *testing.T) {
	nets := []model.Network{
		{Name: "red", Subnet: netip.MustParsePrefix("10.62.0.0/24"), Gateway: netip.MustParseAddr("10.62.0.254")},
		{Name: "blue", Subnet: netip.MustParsePrefix("10.61.0.0/24"), Gateway: netip.MustParseAddr("10.61.0.1")},
	}
	for _, c := range []struct {
		file string
		nets []model.Network
	}{{"testdata/two-networks.nft", nets}, {"testdata/empty.nft", nil}} {
		got := Ruleset("vnbr", c.nets)
		if *update {
			if err := os.WriteFile(c.file, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s: got\n%s\nwant\n%s", c.file, got, want)
		}
		// nft itself is the judge of the syntax: check mode parses and
		// validates against the kernel without changing anything.
		cmd := exec.Command("nft", "-c", "-f", "-")
		cmd.Stdin = strings.NewReader(got)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("nft -c rejects %s: %v\n%s", c.file, err, out)
		}
	}
}

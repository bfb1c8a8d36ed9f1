package datapath

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestUnderlayMTU: each network too large for the underlay is warned about
// once per MTU, a lost underlay address once until it is found again.
func TestUnderlayMTU(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var u UnderlayMTU
	blue := model.Network{Name: "blue", MTU: 1500}
	jumbo := model.Network{Name: "jumbo", MTU: 1501}
	underlay := netip.MustParseAddr("10.99.0.1")
	lost := errors.New("no interface has 10.99.0.1")
	warned := func(want ...string) {
		t.Helper()
		var got []string
		for line := range strings.Lines(buf.String()) {
			for _, w := range []string{"network=blue", "network=jumbo", `cannot be sent" underlay_ip=10.99.0.1`} {
				if strings.Contains(line, w) {
					got = append(got, w)
				}
			}
		}
		buf.Reset()
		if !slices.Equal(got, want) {
			t.Errorf("warned %v, want %v", got, want)
		}
	}
	check := func(n model.Network, err error) {
		if err != nil {
			u.Check(log, n, underlay, "", 0, err)
			return
		}
		u.Check(log, n, underlay, "br-phy", 1500+TunnelOverhead, nil)
	}
	check(blue, nil)
	check(jumbo, nil)
	check(jumbo, nil)
	warned("network=jumbo")
	jumbo.MTU++
	check(jumbo, nil)
	warned("network=jumbo")
	check(blue, lost)
	check(jumbo, lost)
	warned(`cannot be sent" underlay_ip=10.99.0.1`)
	check(blue, nil)
	check(blue, lost)
	warned(`cannot be sent" underlay_ip=10.99.0.1`)
	u.Forget("jumbo")
	check(jumbo, nil)
	warned("network=jumbo")
}

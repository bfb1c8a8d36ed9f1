package ovs

import (
	"testing"

	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// TestPacketInPorts reads in_port and reg0 from the match OVS sends with
// an OpenFlow 1.3 packet-in, which also carries other pipeline fields.
func TestPacketInPorts(t *testing.T) {
	for _, c := range []struct {
		name       string
		fields     []openflow.OXM
		in, net    uint32
		wantParsed bool
	}{
		{"both", []openflow.OXM{openflow.InPort(3), openflow.Reg(0, 2), openflow.Reg(1, 1)}, 3, 2, true},
		{"reg0 first", []openflow.OXM{openflow.Reg(0, 7), openflow.Metadata(5, ^uint64(0)), openflow.InPort(9)}, 9, 7, true},
		{"no reg0", []openflow.OXM{openflow.InPort(3), openflow.Reg(1, 1)}, 3, 0, false},
		{"no in_port", []openflow.OXM{openflow.Reg(0, 2)}, 0, 2, false},
		{"masked reg0", []openflow.OXM{openflow.InPort(3), openflow.RegMasked(0, 2, 0xff)}, 3, 0, false},
	} {
		in, net, ok := packetInPorts(openflow.Match{Fields: c.fields})
		if in != c.in || net != c.net || ok != c.wantParsed {
			t.Errorf("%s: in_port %d, network %d, ok %v; want %d %d %v", c.name, in, net, ok, c.in, c.net, c.wantParsed)
		}
	}
}

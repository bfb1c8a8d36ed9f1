package openflow

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestExact32(t *testing.T) {
	m := Match{Fields: []OXM{
		InPort(7), EthType(EthTypeIPv4), Reg(0, 0x2a), RegMasked(1, 1, 1),
		{Class: OXMClassExperimenter, Experimenter: 0x4f4e4600, Field: 0, Value: []byte{0, 0, 0, 9}},
	}}
	for _, c := range []struct {
		name  string
		field OXM
		want  uint32
		ok    bool
	}{
		{"in_port", InPort(0), 7, true},
		{"register, exact", Reg(0, 0), 0x2a, true},
		{"register, masked", Reg(1, 0), 0, false},
		{"not 32 bits", EthType(0), 0, false},
		{"absent", Reg(2, 0), 0, false},
		{"same field, other class", InPhyPort(0), 0, false},
		{"experimenter, same", OXM{Class: OXMClassExperimenter, Experimenter: 0x4f4e4600}, 9, true},
		{"experimenter, other", OXM{Class: OXMClassExperimenter, Experimenter: 0x2320}, 0, false},
	} {
		if v, ok := m.Exact32(c.field); v != c.want || ok != c.ok {
			t.Errorf("%s: Exact32 = %d, %v; want %d, %v", c.name, v, ok, c.want, c.ok)
		}
	}
}

// TestExact32Conformance reads fields of other projects' packet-ins.
func TestExact32Conformance(t *testing.T) {
	conformanceFiles(t)
	for _, c := range []struct {
		file  string
		field OXM
		want  uint32
		ok    bool
	}{
		{"4-4-ofp_packet_in.packet", InPort(0), 6, true},
		{"4-59-ofp_packet_in.packet", InPort(0), 0x05060708, true},
		{"4-59-ofp_packet_in.packet", TunIPv4Src(netip.IPv4Unspecified()), 0x01020304, true},
		{"4-59-ofp_packet_in.packet", Reg(0, 0), 0, false},
	} {
		raw, err := os.ReadFile(filepath.Join(conformanceDir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		_, msg, err := Unmarshal(raw)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if v, ok := msg.(*PacketIn).Match.Exact32(c.field); v != c.want || ok != c.ok {
			t.Errorf("%s: Exact32(%d/%d) = %#x, %v; want %#x, %v", c.file, c.field.Class, c.field.Field, v, ok, c.want, c.ok)
		}
	}
}

// TestFlowStatsByCookieConformance: asking for every flow of a table (cookie
// and mask 0) is the request of the vector, byte for byte.
func TestFlowStatsByCookieConformance(t *testing.T) {
	conformanceFiles(t)
	raw, err := os.ReadFile(filepath.Join(conformanceDir, "4-11-ofp_flow_stats_request.packet"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(raw)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := Marshal(h.Xid, &MultipartRequest{Body: FlowStatsByCookie(0, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, raw) {
		t.Fatalf("FlowStatsByCookie(0, 0, 0):\n got %x\nwant %x", ours, raw)
	}
}

package openflow

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// exact32Case is a field Exact32 is asked for, and its answer.
type exact32Case struct {
	field OXM
	want  uint32
	ok    bool
}

func checkExact32(t *testing.T, what string, m Match, cases []exact32Case) {
	t.Helper()
	for _, c := range cases {
		if v, ok := m.Exact32(c.field); v != c.want || ok != c.ok {
			t.Errorf("%s: Exact32(class %#x field %d experimenter %#x) = %#x, %v; want %#x, %v",
				what, c.field.Class, c.field.Field, c.field.Experimenter, v, ok, c.want, c.ok)
		}
	}
}

func TestExact32(t *testing.T) {
	onf := OXM{Class: OXMClassExperimenter, Experimenter: 0x4f4e4600}
	m := Match{Fields: []OXM{
		InPort(7), EthType(EthTypeIPv4), Reg(0, 0x2a), RegMasked(1, 1, 1),
		{Class: onf.Class, Experimenter: onf.Experimenter, Value: []byte{0, 0, 0, 9}},
	}}
	checkExact32(t, "our match", m, []exact32Case{
		{InPort(0), 7, true},
		{Reg(0, 0), 0x2a, true},
		{Reg(1, 0), 0, false},    // masked
		{EthType(0), 0, false},   // not 32 bits
		{Reg(2, 0), 0, false},    // absent
		{InPhyPort(0), 0, false}, // another field of the class
		{onf, 9, true},           // experimenter field
		{OXM{Class: OXMClassExperimenter, Experimenter: 0x2320}, 0, false}, // another experimenter
	})
}

// TestExact32Conformance reads fields of other projects' packet-ins.
func TestExact32Conformance(t *testing.T) {
	conformanceFiles(t)
	for file, cases := range map[string][]exact32Case{
		"4-4-ofp_packet_in.packet": {{InPort(0), 6, true}},
		"4-59-ofp_packet_in.packet": {
			{InPort(0), 0x05060708, true},
			{TunIPv4Src(netip.IPv4Unspecified()), 0x01020304, true},
			{Reg(0, 0), 0, false},
		},
	} {
		raw, err := os.ReadFile(filepath.Join(conformanceDir, file))
		if err != nil {
			t.Fatal(err)
		}
		_, msg, err := Unmarshal(raw)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		checkExact32(t, file, msg.(*PacketIn).Match, cases)
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

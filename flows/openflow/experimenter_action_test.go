package openflow

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestActionExperimenter(t *testing.T) {
	for _, c := range []struct {
		name string
		hex  string
		want Action
	}{
		{"header only", "ffff000800000065", ActionExperimenter{Experimenter: 0x65}},
		// The one in 4-2-ofp_flow_mod.packet.
		{"8 bytes of data", "ffff0010000000650001020304050607", ActionExperimenter{Experimenter: 0x65, Data: []byte{0, 1, 2, 3, 4, 5, 6, 7}}},
		// The one in 4-12-ofp_flow_stats_reply.packet.
		{"experimenter 0x05e30a78", "ffff001005e30a786578705f64617461", ActionExperimenter{Experimenter: 0x05e30a78, Data: []byte("exp_data")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := unhex(t, c.hex)
			as, err := decodeActions(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(as) != 1 || !reflect.DeepEqual(as[0], c.want) {
				t.Fatalf("decoded %#v, want %#v", as, c.want)
			}
			again, err := appendActions(nil, as)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("encoded %x (%v), want %x", again, err, b)
			}
		})
	}
	for _, a := range []ActionExperimenter{
		{Experimenter: 0x65, Data: []byte{1, 2, 3}},         // not a multiple of 8
		{Experimenter: vendorNicira, Data: make([]byte, 8)}, // modelled types only
		{Experimenter: vendorONF},
		{Experimenter: 0x65, Data: make([]byte, 0x10000)}, // overflows the length
	} {
		if b, err := a.appendAction([]byte{9}); err == nil || !bytes.Equal(b, []byte{9}) {
			t.Errorf("%#x with %d bytes: encoded %x (%v), want an error and nothing written", a.Experimenter, len(a.Data), b, err)
		}
	}
}

// Unknown Nicira and ONF subtypes stay unsupported: OVS refuses them
// (OFPBAC_BAD_VENDOR_TYPE) and a verbatim ActionExperimenter would hide
// that the codec claims to know those experimenters' layouts.
func TestActionExperimenterNotForNiciraOrONF(t *testing.T) {
	for _, h := range []string{
		"ffff0010000023206578705f64617461", // subtype 0x6578, from 4-12
		"ffff00184f4e46000c800000000000000000000000000000",
	} {
		if _, err := decodeActions(unhex(t, h)); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", h, err)
		}
	}
}

// TestConformanceUnsupportedWhy pins the reason 4-12 stays unsupported
// (see the comment above the supported list), so that a change of reason
// is noticed.
func TestConformanceUnsupportedWhy(t *testing.T) {
	conformanceFiles(t)
	raw, err := os.ReadFile(filepath.Join(conformanceDir, "4-12-ofp_flow_stats_reply.packet"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Unmarshal(raw)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(ue.What, "nicira action subtype 25976") {
		t.Fatalf("want the Nicira subtype 0x6578 unsupported, got %v", err)
	}
}

func TestFormatExperimenterAction(t *testing.T) {
	got := FormatActions([]Instruction{ApplyActions{Actions: []Action{ActionExperimenter{Experimenter: 0x65, Data: []byte{1, 2, 3, 4, 0, 0, 0, 0}}}}})
	if got != "experimenter(0x65,data=0x0102030400000000)" {
		t.Fatalf("got %q", got)
	}
}

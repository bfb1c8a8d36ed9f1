package openflow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// Byte-exactness: input the encoder could not reproduce must not decode.
// Each case is a valid message with one change that re-encoding would undo.
func TestDecodeRejectsWhatEncodingWouldChange(t *testing.T) {
	flowMod := func() []byte {
		raw, err := Marshal(7, &FlowMod{BufferID: NoBuffer, OutPort: PortAny, OutGroup: GroupAny,
			Match: Match{Fields: []OXM{InPort(1)}}}) // match of 12 bytes, 4 of padding
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	features := func() []byte {
		raw, err := Marshal(7, &FeaturesReply{DatapathID: 1, NTables: 254})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	bundleAdd := func() []byte {
		raw, err := Marshal(5, &BundleAdd{BundleID: 1, Message: &BarrierRequest{}})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	for _, c := range []struct {
		name string
		raw  func() []byte
		edit func(b []byte)
		want error
	}{
		// flow mod: header 8, fixed part 40, match 12, match padding 4.
		{"match padding", flowMod, func(b []byte) { b[8+40+12+3] = 1 }, ErrMalformed},
		// features reply: header 8, datapath 8, buffers 4, tables 1, aux 1, pad 2.
		{"features reply pad", features, func(b []byte) { b[8+14] = 1 }, ErrMalformed},
		// bundle add: header 8, experimenter 8, bundle 8, inner header (xid at 4).
		{"bundle add inner xid", bundleAdd, func(b []byte) { b[24+7] = 9 }, ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := c.raw()
			if _, _, err := Unmarshal(b); err != nil {
				t.Fatalf("unedited: %v", err)
			}
			c.edit(b)
			if _, m, err := Unmarshal(b); !errors.Is(err, c.want) {
				t.Fatalf("got %v (%#v), want %v", err, m, c.want)
			}
		})
	}
}

// A version bitmap after another hello element is kept verbatim: taken as
// Versions it would be encoded first.
func TestHelloBitmapNotFirst(t *testing.T) {
	raw := []byte{4, 0, 0, 0, 0, 0, 0, 1,
		0, 7, 0, 8, 1, 2, 3, 4, // element type 7
		0, 1, 0, 8, 0, 0, 0, 0x10, // version bitmap: 1.3
	}
	binary.BigEndian.PutUint16(raw[2:], uint16(len(raw)))
	h, m, err := Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	hello := m.(*Hello)
	if hello.Versions != nil || len(hello.Elements) != 2 {
		t.Fatalf("got %+v, want two verbatim elements", hello)
	}
	if again, err := Marshal(h.Xid, m); err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("re-encoded %x (%v), want %x", again, err, raw)
	}
}

// Decoded match values share one buffer; appending to one must not
// overwrite the next.
func TestMatchValuesIndependent(t *testing.T) {
	raw, err := Marshal(1, typicalFlowMod())
	if err != nil {
		t.Fatal(err)
	}
	_, m, err := Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	fs := m.(*FlowMod).Match.Fields
	want := append([]byte(nil), fs[1].Value...)
	_ = append(fs[0].Value, 0xee, 0xee, 0xee, 0xee)
	if !bytes.Equal(fs[1].Value, want) {
		t.Fatalf("field 1 became %x, want %x", fs[1].Value, want)
	}
	raw[56] ^= 0xff // in_port's value: the decoded match must not alias its input
	if again, _ := Marshal(1, m); again[56] == raw[56] {
		t.Fatal("decoded message aliases the input")
	}
}

package openflow

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestBundleGolden(t *testing.T) {
	add := &FlowMod{
		Command: FlowAdd, TableID: 2, Priority: 200, BufferID: NoBuffer, OutPort: PortAny, OutGroup: GroupAny,
		Cookie:       0x1122334455667788,
		Match:        Match{Fields: []OXM{InPort(3)}},
		Instructions: []Instruction{GotoTable{Table: 3}},
	}
	testGolden(t, []goldenCase{
		{"bundle_open", 0x20, &BundleControl{BundleID: 9, CtrlType: BundleOpenRequest, Flags: BundleAtomic | BundleOrdered}},
		{"bundle_open_reply", 0x20, &BundleControl{BundleID: 9, CtrlType: BundleOpenReply, Flags: BundleAtomic | BundleOrdered}},
		{"bundle_add_flow_mod", 0x21, &BundleAdd{BundleID: 9, Flags: BundleAtomic | BundleOrdered, Message: add}},
		{"bundle_add_port_mod", 0x22, &BundleAdd{BundleID: 9, Flags: BundleAtomic, Message: &PortMod{PortNo: 1, Config: PortConfigDown, Mask: PortConfigDown}}},
		{"bundle_close", 0x23, &BundleControl{BundleID: 9, CtrlType: BundleCloseRequest}},
		{"bundle_commit", 0x24, &BundleControl{BundleID: 9, CtrlType: BundleCommitRequest, Flags: BundleAtomic | BundleOrdered}},
		{"bundle_commit_reply", 0x24, &BundleControl{BundleID: 9, CtrlType: BundleCommitReply, Flags: BundleAtomic | BundleOrdered}},
		{"bundle_discard", 0x25, &BundleControl{BundleID: 10, CtrlType: BundleDiscardRequest}},
		// NXT_FLOW_MOD_TABLE_ID (15): not modelled, so carried generically.
		{"experimenter_nicira", 0x26, &Experimenter{Experimenter: vendorNicira, ExpType: 15, Data: []byte{1, 0, 0, 0, 0, 0, 0, 0}}},
	})
}

func TestBundleAddInnerXid(t *testing.T) {
	raw, err := Marshal(0xfeedf00d, &BundleAdd{BundleID: 1, Message: &BarrierRequest{}})
	if err != nil {
		t.Fatal(err)
	}
	// outer header 8, experimenter 8, bundle header 8, then the inner header.
	if inner := binary.BigEndian.Uint32(raw[24+4:]); inner != 0xfeedf00d {
		t.Fatalf("inner xid %#x, want the outer xid", inner)
	}
	if _, err := (&BundleAdd{BundleID: 1, Message: &BarrierRequest{}}).appendBody(nil); err == nil {
		t.Fatal("bundle add encoded without the outer header to take the xid from")
	}
}

func TestBundleAddRejects(t *testing.T) {
	good, _ := Marshal(5, &BundleAdd{BundleID: 1, Message: &BarrierRequest{}})
	for name, c := range map[string]struct {
		edit func(b []byte) []byte
		want error
	}{
		"inner length beyond the message": {func(b []byte) []byte { b[24+3] = 0x40; return b }, ErrMalformed},
		"inner length below a header":     {func(b []byte) []byte { b[24+3] = 4; return b }, ErrMalformed},
		"no inner message":                {func(b []byte) []byte { return b[:24] }, ErrMalformed},
		"nested bundle": {func(b []byte) []byte {
			nested, _ := Marshal(5, &BundleAdd{BundleID: 2, Message: &BarrierRequest{}})
			return append(b[:24], nested...)
		}, ErrUnsupported},
		"other ONF message": {func(b []byte) []byte { b[15] = 0xff; return b }, ErrUnsupported},
	} {
		t.Run(name, func(t *testing.T) {
			b := c.edit(append([]byte(nil), good...))
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
			if _, _, err := Unmarshal(b); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

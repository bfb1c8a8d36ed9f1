package openflow

import (
	"encoding/binary"
	"fmt"
)

// nxastCheckPktLarger is NXAST_RAW_CHECK_PKT_LARGER (lib/ofp-actions.c).
const nxastCheckPktLarger = 49

// NXCheckPktLarger is NXAST_CHECK_PKT_LARGER, check_pkt_larger(PktLen)->Dst:
// Dst (one bit) becomes 1 when the packet is longer than PktLen bytes, 0
// otherwise. OVS counts the Ethernet header and payload but no VLAN tag
// (ovs-actions(7)), so a check against an IP MTU uses MTU + 14.
type NXCheckPktLarger struct {
	PktLen uint16
	Dst    SubField // NBits 1
}

func (a NXCheckPktLarger) appendAction(b []byte) ([]byte, error) {
	if a.Dst.NBits != 1 || a.Dst.Field.HasMask || !bitIn(a.Dst.Field, a.Dst.Ofs) {
		return b, fmt.Errorf("check_pkt_larger: destination %d bits at %d of a field of %d bytes (masked %v), want 1 bit in it",
			a.Dst.NBits, a.Dst.Ofs, a.Dst.Field.Len, a.Dst.Field.HasMask)
	}
	b, start := nxStart(b, nxastCheckPktLarger)
	b = binary.BigEndian.AppendUint16(b, a.PktLen)
	b = binary.BigEndian.AppendUint16(b, a.Dst.Ofs)
	return nxFinish(appendRef(b, a.Dst.Field), start)
}

// bitIn reports whether bit ofs lies in field f, whose header's length
// counts an experimenter's ID too.
func bitIn(f FieldRef, ofs uint16) bool {
	width := int(f.Len)
	if f.Class == OXMClassExperimenter {
		width -= 4
	}
	return int(ofs) < 8*width
}

// decodeCheckPktLarger follows decode_NXAST_RAW_CHECK_PKT_LARGER: the
// destination is a header (4 or 8 bytes) and its bit offset, one bit wide.
func decodeCheckPktLarger(r *reader) (Action, error) {
	a := NXCheckPktLarger{PktLen: r.u16(), Dst: SubField{Ofs: r.u16(), NBits: 1}}
	a.Dst.Field = decodeRef(r)
	if r.err == nil && (a.Dst.Field.HasMask || !bitIn(a.Dst.Field, a.Dst.Ofs)) {
		return nil, malformed("check_pkt_larger: bit %d of a field of %d bytes (masked %v)", a.Dst.Ofs, a.Dst.Field.Len, a.Dst.Field.HasMask)
	}
	r.padding()
	if err := r.done(); err != nil {
		return nil, err
	}
	return a, nil
}

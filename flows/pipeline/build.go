package pipeline

import (
	"fmt"
	"net"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Protocol numbers the flows match on.
const (
	ethIPv4         = 0x0800
	ethARP          = 0x0806
	ethIPv6         = 0x86dd
	arpRequest      = 1
	arpReplyOp      = 2
	protoICMP       = 1
	protoUDP        = 17
	icmpEchoRequest = 8
	icmpEchoReply   = 0
	ethHeaderLen    = 14
)

// multicastBit is the group bit of a MAC: broadcast and multicast have it.
var multicastBit = net.HardwareAddr{0x01, 0, 0, 0, 0, 0}

// Fields that the Nicira move and stack actions name by their NXM headers: OVS
// reports reg_move on OpenFlow 1.3 with these, and a flow must be sent as it
// is reported back, or every resync would find it changed.
var (
	nxmEthDst = openflow.FieldRef{Class: openflow.OXMClassNXM0, Field: 1, Len: 6}
	nxmEthSrc = openflow.FieldRef{Class: openflow.OXMClassNXM0, Field: 2, Len: 6}
	nxmIPSrc  = openflow.FieldRef{Class: openflow.OXMClassNXM0, Field: 7, Len: 4}
	nxmIPDst  = openflow.FieldRef{Class: openflow.OXMClassNXM0, Field: 8, Len: 4}
	nxmTCPSrc = openflow.FieldRef{Class: openflow.OXMClassNXM0, Field: 9, Len: 2}
	nxmTCPDst = openflow.FieldRef{Class: openflow.OXMClassNXM0, Field: 10, Len: 2}
	nxmARPSpa = openflow.FieldRef{Class: openflow.OXMClassNXM0, Field: 16, Len: 4}
	nxmARPTpa = openflow.FieldRef{Class: openflow.OXMClassNXM0, Field: 17, Len: 4}
	nxmARPSha = openflow.FieldRef{Class: openflow.OXMClassNXM1, Field: 17, Len: 6}
	nxmARPTha = openflow.FieldRef{Class: openflow.OXMClassNXM1, Field: 18, Len: 6}
)

func flow(table uint8, priority uint16, cookie uint64, m openflow.Match, instr ...openflow.Instruction) flowset.Flow {
	return flowset.Flow{Table: table, Priority: priority, Cookie: cookie, Match: m, Instructions: instr}
}

// drop is a flow without instructions: OpenFlow drops what it matches, and
// the flow's counters count the drops of its reason.
func drop(table uint8, priority uint16, cookie uint64, fields ...openflow.OXM) flowset.Flow {
	return flow(table, priority, cookie, match(fields...))
}

func match(fields ...openflow.OXM) openflow.Match { return openflow.Match{Fields: fields} }

func apply(actions ...openflow.Action) openflow.Instruction {
	return openflow.ApplyActions{Actions: actions}
}

func gotoTable(t uint8) openflow.Instruction { return openflow.GotoTable{Table: t} }

func setField(f openflow.OXM) openflow.Action { return openflow.ActionSetField{Field: f} }

// regRef names register n for the actions that read or write fields.
func regRef(n int) openflow.FieldRef { return openflow.RefOf(fmt.Sprintf("reg%d", n)) }

// flagBit is a bit of RegFlags as a field's bit.
func flagBit(bit int) openflow.SubField {
	return openflow.SubField{Field: regRef(RegFlags), Ofs: uint16(bit), NBits: 1}
}

// loadFlag sets a bit of RegFlags to v.
func loadFlag(bit int, v uint64) openflow.Action {
	return openflow.NXRegLoad{Dst: flagBit(bit), Value: v}
}

// flagTooBig is FlagTooBig as a field's bit.
var flagTooBig = flagBit(FlagTooBig)

// routeTo makes m the packet's network and, when m's MTU is smaller than
// from's, sets FlagTooBig for a packet that does not fit it. A packet that
// fits from's link fits one as large: no check, and no false alarm for a
// TSO super-packet (see Base). check_pkt_larger counts the Ethernet header
// but not a VLAN tag (ovs-actions(7)); our networks carry no tags.
func routeTo(from, m model.Network) []openflow.Action {
	as := []openflow.Action{setField(openflow.Reg(RegNetwork, uint32(m.ID)))}
	if m.MTU < from.MTU {
		as = append(as, openflow.NXCheckPktLarger{PktLen: uint16(m.MTU + ethHeaderLen), Dst: flagTooBig})
	}
	return as
}

func move(src, dst openflow.FieldRef, bits uint16) openflow.Action {
	return openflow.NXRegMove{NBits: bits, Src: src, Dst: dst}
}

package openflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Action text follows OVS 3.1's ofpacts_format (lib/ofp-actions.c): one
// renderer per action, named after OVS's format_<ACTION>.

// FormatActions renders instructions as the part of an ovs-ofctl flow
// after "actions=": "ct(commit,zone=5),resubmit(,10)", "goto_table:5", or
// "drop" when there is nothing to do. OVS keeps instructions in the order
// OpenFlow executes them (meter, apply, clear, write, metadata, goto), not
// the order they came in, and prints them so; so does this.
func FormatActions(is []Instruction) string {
	ordered := slices.Clone(is)
	slices.SortStableFunc(ordered, func(a, b Instruction) int { return instructionRank(a) - instructionRank(b) })
	var parts []string
	for _, i := range ordered {
		if s := formatInstruction(i); s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "drop"
	}
	return strings.Join(parts, ",")
}

// instructionRank is OVS's order of instructions (enum ovs_instruction_type).
func instructionRank(i Instruction) int {
	switch i.(type) {
	case MeterInstruction:
		return 0
	case ApplyActions:
		return 1
	case ClearActions:
		return 2
	case WriteActions:
		return 3
	case WriteMetadata:
		return 4
	case GotoTable:
		return 5
	}
	return 6
}

func formatInstruction(i Instruction) string {
	switch i := i.(type) {
	case MeterInstruction:
		return fmt.Sprintf("meter:%d", i.MeterID)
	case ApplyActions:
		return formatActionList(i.Actions)
	case ClearActions:
		return "clear_actions"
	case WriteActions:
		return "write_actions(" + formatActionList(i.Actions) + ")"
	case WriteMetadata:
		s := "write_metadata:" + cHex(i.Metadata)
		if i.Mask != ^uint64(0) {
			s += "/" + cHex(i.Mask)
		}
		return s
	case GotoTable:
		return fmt.Sprintf("goto_table:%d", i.Table)
	}
	return fmt.Sprintf("instruction(%T)", i)
}

func formatActionList(as []Action) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = formatAction(a)
	}
	return strings.Join(parts, ",")
}

func formatAction(a Action) string {
	switch a := a.(type) {
	case ActionOutput:
		return formatOutput(a)
	case ActionCopyTTLOut:
		return "copy_ttl_out"
	case ActionCopyTTLIn:
		return "copy_ttl_in"
	case ActionSetMPLSTTL:
		return fmt.Sprintf("set_mpls_ttl(%d)", a.TTL)
	case ActionDecMPLSTTL:
		return "dec_mpls_ttl"
	case ActionPushVLAN:
		return fmt.Sprintf("push_vlan:0x%04x", a.EtherType)
	case ActionPopVLAN:
		return "pop_vlan"
	case ActionPushMPLS:
		return fmt.Sprintf("push_mpls:0x%04x", a.EtherType)
	case ActionPopMPLS:
		return fmt.Sprintf("pop_mpls:0x%04x", a.EtherType)
	case ActionSetQueue:
		return fmt.Sprintf("set_queue:%d", a.QueueID)
	case ActionGroup:
		return fmt.Sprintf("group:%d", a.GroupID)
	case ActionSetNWTTL:
		return fmt.Sprintf("mod_nw_ttl:%d", a.TTL)
	case ActionDecNWTTL:
		return "dec_ttl"
	case ActionSetField:
		return formatSetField(a.Field)
	case ActionPushPBB:
		return fmt.Sprintf("push_pbb:0x%04x", a.EtherType)
	case ActionPopPBB:
		return "pop_pbb"
	case NXResubmit:
		return formatResubmit(a.InPort, ResubmitCurrentTable, false)
	case NXResubmitTable:
		return formatResubmit(a.InPort, a.Table, a.CT)
	case NXRegLoad:
		return "load:" + cHex(a.Value) + "->" + formatSubField(a.Dst)
	case NXRegLoad2:
		return formatSetField(a.Field)
	case NXRegMove:
		return fmt.Sprintf("move:%s->%s", formatSubField(SubField{a.Src, a.SrcOfs, a.NBits}),
			formatSubField(SubField{a.Dst, a.DstOfs, a.NBits}))
	case NXNote:
		return "note:" + dotted(noteBytes(a.Data))
	case NXController:
		return formatController(controllerText{maxLen: a.MaxLen, id: a.ControllerID, reason: a.Reason, meter: noMeter})
	case NXController2:
		return formatController(controller2Text(a))
	case NXFinTimeout:
		return formatFinTimeout(a)
	case NXDecTTLCntIDs:
		ids := make([]string, len(a.IDs))
		for i, id := range a.IDs {
			ids[i] = fmt.Sprint(id)
		}
		return "dec_ttl(" + strings.Join(ids, ",") + ")"
	case NXStackPush:
		return "push:" + formatSubField(a.Field)
	case NXStackPop:
		return "pop:" + formatSubField(a.Field)
	case NXSample:
		return formatSample(a, "")
	case NXSample2:
		return formatSample(a.NXSample, ",sampling_port="+port16(a.SamplingPort))
	case NXConjunction:
		return fmt.Sprintf("conjunction(%d,%d/%d)", a.ID, int(a.Clause)+1, a.NClauses)
	case NXOutputTrunc:
		return fmt.Sprintf("output(port=%s,max_len=%d)", port16(a.Port), a.MaxLen)
	case NXOutputReg:
		return "output:" + formatSubField(a.Src)
	case NXCTClear:
		return "ct_clear"
	case NXCT:
		return formatCT(a)
	case NXNAT:
		return formatNAT(a)
	case NXLearn:
		return formatLearn(a)
	case NXCheckPktLarger:
		return fmt.Sprintf("check_pkt_larger(%d)->%s", a.PktLen, formatSubField(a.Dst))
	case ActionExperimenter:
		// OVS knows no such action and prints none; this form at least
		// names the experimenter and keeps every byte visible.
		return fmt.Sprintf("experimenter(%#x,data=0x%x)", a.Experimenter, a.Data)
	}
	return fmt.Sprintf("action(%T)", a)
}

// formatOutput is format_OUTPUT: physical ports as output:N, reserved
// ones by name, the controller with its max_len.
func formatOutput(a ActionOutput) string {
	q, ok := ofp11Port(a.Port)
	switch {
	case !ok:
		return fmt.Sprintf("output:%d", a.Port)
	case a.Port == PortController:
		return fmt.Sprintf("CONTROLLER:%d", a.MaxLen)
	case q < 0xff00:
		return fmt.Sprintf("output:%d", q)
	}
	return port16(q)
}

func formatResubmit(port uint16, table uint8, ct bool) string {
	if port != ResubmitInPort && table == ResubmitCurrentTable && !ct {
		return "resubmit:" + port16(port)
	}
	s := "resubmit("
	if port != ResubmitInPort {
		s += port16(port)
	}
	s += ","
	if table != ResubmitCurrentTable {
		s += fmt.Sprint(table)
	}
	if ct {
		s += ",ct"
	}
	return s + ")"
}

// formatSetField is format_SET_FIELD: set_field:VALUE->FIELD, the value
// written as OVS writes that field.
func formatSetField(o OXM) string {
	t, ok := textOf(o.Class, o.Field, o.Experimenter)
	if !ok || len(o.Value) != t.wireBytes() || (o.Mask != nil && len(o.Mask) != len(o.Value)) {
		return "set_field:" + otherField(o)
	}
	return "set_field:" + formatValue(t, o.Value, o.Mask) + "->" + t.mf
}

// formatValue is mf_format: a value (and mask, unless it is all ones) in
// the field's notation.
func formatValue(t fieldText, v, m []byte) string {
	if m != nil && allOnes(m) {
		m = nil
	}
	switch t.kind {
	case kindEthernet:
		return ethMasked(v, m)
	case kindIPv4:
		mask := uint32(0xffffffff)
		if m != nil {
			mask = binary.BigEndian.Uint32(m)
		}
		return ip4Masked(binary.BigEndian.Uint32(v), mask)
	case kindIPv6:
		return ip6Masked(v, m)
	case kindCtState:
		mask := uint32(0xffffffff)
		if m != nil {
			mask = binary.BigEndian.Uint32(m)
		}
		return ctStateText(binary.BigEndian.Uint32(v), mask)
	case kindPort16, kindPort32:
		if m == nil {
			if t.kind == kindPort16 {
				return port16(uint16(beUint(v)))
			}
			return port32(uint32(beUint(v)))
		}
	case kindDecimal:
		if len(v) <= 8 {
			s := fmt.Sprint(beUint(v))
			if m != nil {
				s += "/" + hexBytes(m)
			}
			return s
		}
	}
	s := hexBytes(v)
	if m != nil {
		s += "/" + hexBytes(m)
	}
	return s
}

// formatSubField is mf_format_subfield: FIELD[], FIELD[bit] or
// FIELD[first..last].
func formatSubField(sf SubField) string {
	name, bits := fmt.Sprintf("NXM_HEADER(%#x,%d)", sf.Field.Class, sf.Field.Field), -1
	if t, ok := textOf(sf.Field.Class, sf.Field.Field, sf.Field.Experimenter); ok {
		name, bits = t.nxm, t.bits
	}
	switch {
	case sf.Ofs == 0 && int(sf.NBits) == bits:
		return name + "[]"
	case sf.NBits == 1:
		return fmt.Sprintf("%s[%d]", name, sf.Ofs)
	}
	return fmt.Sprintf("%s[%d..%d]", name, sf.Ofs, int(sf.Ofs)+int(sf.NBits)-1)
}

// noteBytes is the note as the switch keeps it: with the zeros that pad
// the action to a multiple of 8 bytes.
func noteBytes(data []byte) []byte {
	const header = 10 // type, length, vendor, subtype
	return append(slices.Clone(data), make([]byte, pad8(header+len(data)))...)
}

// dotted is format_hex_arg: bytes in hex, separated by dots.
func dotted(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ".")
}

// noMeter (NX_CTLR_NO_METER) is the meter of a controller action without one.
const noMeter = 0xffffffff

// reasonAction (OFPR_ACTION) is the reason a controller action gives unless
// told otherwise.
const reasonAction = 1

// controllerText is OVS's ofpact_controller, which both NXAST_CONTROLLER
// and NXAST_CONTROLLER2 decode to.
type controllerText struct {
	maxLen, id uint16
	reason     uint8
	userdata   []byte
	pause      bool
	meter      uint32
}

// controller2Text fills in the defaults of the properties a controller2
// action leaves out.
func controller2Text(a NXController2) controllerText {
	c := controllerText{maxLen: 0xffff, reason: reasonAction, meter: noMeter, userdata: a.Userdata, pause: a.Pause}
	if a.MaxLen != 0 || a.Present&C2MaxLen != 0 {
		c.maxLen = a.MaxLen
	}
	if a.ControllerID != 0 || a.Present&C2ControllerID != 0 {
		c.id = a.ControllerID
	}
	if a.Reason != 0 || a.Present&C2Reason != 0 {
		c.reason = a.Reason
	}
	if a.MeterID != 0 || a.Present&C2MeterID != 0 {
		c.meter = a.MeterID
	}
	return c
}

// formatController is format_CONTROLLER: the short CONTROLLER:max_len
// when only the length differs from the defaults.
func formatController(c controllerText) string {
	if c.reason == reasonAction && c.id == 0 && len(c.userdata) == 0 && !c.pause && c.meter == noMeter {
		return fmt.Sprintf("CONTROLLER:%d", c.maxLen)
	}
	var args []string
	if c.reason != reasonAction {
		args = append(args, "reason="+packetInReason(c.reason))
	}
	if c.maxLen != 0xffff {
		args = append(args, fmt.Sprintf("max_len=%d", c.maxLen))
	}
	if c.id != 0 {
		args = append(args, fmt.Sprintf("id=%d", c.id))
	}
	if len(c.userdata) > 0 {
		args = append(args, "userdata="+dotted(c.userdata))
	}
	if c.pause {
		args = append(args, "pause")
	}
	if c.meter != noMeter {
		args = append(args, fmt.Sprintf("meter_id=%d", c.meter))
	}
	return "controller(" + strings.Join(args, ",") + ")"
}

// packetInReason is ofputil_packet_in_reason_to_string.
func packetInReason(r uint8) string {
	names := [...]string{"no_match", "action", "invalid_ttl", "action_set", "group", "packet_out"}
	if int(r) < len(names) {
		return names[r]
	}
	return fmt.Sprint(r)
}

func formatFinTimeout(a NXFinTimeout) string {
	var args []string
	if a.IdleTimeout != 0 {
		args = append(args, fmt.Sprintf("idle_timeout=%d", a.IdleTimeout))
	}
	if a.HardTimeout != 0 {
		args = append(args, fmt.Sprintf("hard_timeout=%d", a.HardTimeout))
	}
	return "fin_timeout(" + strings.Join(args, ",") + ")"
}

func formatSample(a NXSample, port string) string {
	return fmt.Sprintf("sample(probability=%d,collector_set_id=%d,obs_domain_id=%d,obs_point_id=%d%s)",
		a.Probability, a.CollectorSetID, a.ObsDomainID, a.ObsPointID, port)
}

// formatCT is format_CT: a leading nat action is printed bare, the rest
// inside exec(...).
func formatCT(a NXCT) string {
	var args []string
	if a.Flags&NXCTCommit != 0 {
		args = append(args, "commit")
	}
	if a.Flags&NXCTForce != 0 {
		args = append(args, "force")
	}
	if a.RecircTable != NXCTNoRecirc {
		args = append(args, fmt.Sprintf("table=%d", a.RecircTable))
	}
	if a.ZoneSrc.Field != (FieldRef{}) {
		args = append(args, "zone="+formatSubField(a.ZoneSrc))
	} else if a.Zone != 0 {
		args = append(args, fmt.Sprintf("zone=%d", a.Zone))
	}
	actions := a.Actions
	if len(actions) > 0 {
		if nat, ok := actions[0].(NXNAT); ok {
			args = append(args, formatNAT(nat))
			actions = actions[1:]
		}
	}
	if len(actions) > 0 {
		args = append(args, "exec("+formatActionList(actions)+")")
	}
	switch a.Alg {
	case 0:
	case 21:
		args = append(args, "alg=ftp")
	case 69:
		args = append(args, "alg=tftp")
	default:
		args = append(args, fmt.Sprintf("alg=%d", a.Alg))
	}
	return "ct(" + strings.Join(args, ",") + ")"
}

// formatNAT is format_NAT. OVS prints the port range only after an
// address, so a port range alone does not show.
func formatNAT(a NXNAT) string {
	if a.Flags&(NXNATSrc|NXNATDst) == 0 {
		return "nat"
	}
	s := "dst"
	if a.Flags&NXNATSrc != 0 {
		s = "src"
	}
	if a.MinAddr.IsValid() {
		s += "=" + natAddr(a.MinAddr, a.MinPort != 0)
		if a.MaxAddr.IsValid() && a.MaxAddr != a.MinAddr && !(a.MaxAddr.Is6() && a.MaxAddr.IsUnspecified()) {
			s += "-" + natAddr(a.MaxAddr, a.MinPort != 0)
		}
		if a.MinPort != 0 {
			s += fmt.Sprintf(":%d", a.MinPort)
			if a.MaxPort != 0 && a.MaxPort != a.MinPort {
				s += fmt.Sprintf("-%d", a.MaxPort)
			}
		}
	}
	args := []string{s}
	for _, f := range []struct {
		bit  uint16
		name string
	}{{NXNATPersistent, "persistent"}, {NXNATProtoHash, "hash"}, {NXNATProtoRandom, "random"}} {
		if a.Flags&f.bit != 0 {
			args = append(args, f.name)
		}
	}
	return "nat(" + strings.Join(args, ",") + ")"
}

// natAddr brackets an IPv6 address when a port follows it.
func natAddr(a netip.Addr, port bool) string {
	if a.Is4() {
		return a.String()
	}
	s := ip6Text(a.AsSlice())
	if port {
		return "[" + s + "]"
	}
	return s
}

// formatLearn is learn_format.
func formatLearn(a NXLearn) string {
	var b strings.Builder
	fmt.Fprintf(&b, "learn(table=%d", a.Table)
	if a.IdleTimeout != 0 {
		fmt.Fprintf(&b, ",idle_timeout=%d", a.IdleTimeout)
	}
	if a.HardTimeout != 0 {
		fmt.Fprintf(&b, ",hard_timeout=%d", a.HardTimeout)
	}
	if a.FinIdleTimeout != 0 {
		fmt.Fprintf(&b, ",fin_idle_timeout=%d", a.FinIdleTimeout)
	}
	if a.FinHardTimeout != 0 {
		fmt.Fprintf(&b, ",fin_hard_timeout=%d", a.FinHardTimeout)
	}
	if a.Priority != defaultPriority {
		fmt.Fprintf(&b, ",priority=%d", a.Priority)
	}
	if a.Flags&learnSendFlowRem != 0 {
		b.WriteString(",send_flow_rem")
	}
	if a.Flags&learnDeleteLearned != 0 {
		b.WriteString(",delete_learned")
	}
	if a.Cookie != 0 {
		fmt.Fprintf(&b, ",cookie=%#x", a.Cookie)
	}
	for _, s := range a.Specs {
		b.WriteByte(',')
		b.WriteString(formatLearnSpec(s))
	}
	return b.String() + ")"
}

// NX_LEARN_F_* flags that learn_format prints.
const (
	learnSendFlowRem   = 1 << 0
	learnDeleteLearned = 1 << 1
)

// formatLearnSpec prints one learn spec the way learn_format does for its
// source and destination kinds.
func formatLearnSpec(s LearnSpec) string {
	dst := SubField{Field: s.DstRef, Ofs: s.DstOfs, NBits: s.NBits}
	src := SubField{Field: s.Src, Ofs: s.SrcOfs, NBits: s.NBits}
	imm := learnImmediate(s)
	switch {
	case s.Dst == LearnDstMatch && s.Imm != nil:
		if t, ok := textOf(s.DstRef.Class, s.DstRef.Field, s.DstRef.Experimenter); ok && s.DstOfs == 0 && int(s.NBits) == t.bits && t.wireBytes() >= len(imm) {
			v := make([]byte, t.wireBytes())
			copy(v[len(v)-len(imm):], imm)
			return t.mf + "=" + formatValue(t, v, nil)
		}
		return formatSubField(dst) + "=" + hexBytes(imm)
	case s.Dst == LearnDstMatch:
		if !sameField(s.Src, s.DstRef) || s.SrcOfs != s.DstOfs {
			return formatSubField(dst) + "=" + formatSubField(src)
		}
		return formatSubField(dst)
	case s.Dst == LearnDstLoad && s.Imm != nil:
		return "load:" + hexBytes(imm) + "->" + formatSubField(dst)
	case s.Dst == LearnDstLoad:
		return "load:" + formatSubField(src) + "->" + formatSubField(dst)
	}
	return "output:" + formatSubField(src)
}

// learnImmediate is the immediate as OVS keeps it: the low
// ceil(n_bits/8) bytes of the 16-bit-aligned wire value.
func learnImmediate(s LearnSpec) []byte {
	n := (int(s.NBits) + 7) / 8
	if n > len(s.Imm) {
		return s.Imm
	}
	return s.Imm[len(s.Imm)-n:]
}

// sameField compares fields as OVS does, by what they name: an NXM and an
// OXM header of one field are the same field.
func sameField(a, b FieldRef) bool {
	ta, okA := textOf(a.Class, a.Field, a.Experimenter)
	tb, okB := textOf(b.Class, b.Field, b.Experimenter)
	if okA && okB {
		return ta.mf == tb.mf
	}
	return a == b
}

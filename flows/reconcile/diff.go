// Package reconcile keeps a bridge's flow table equal to a desired flow set
// without a window of missing flows: it dumps the flows we own, computes the
// difference, and applies it in one atomic bundle. Flows that carry another
// owner's cookie are never read into the diff, so never touched; flows that
// did not change are not sent, so they keep their counters.
package reconcile

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// Flow is one flow the controller wants on a bridge. Cookie names the object
// that owns it (see CookieSpace); a changed object gets a new generation in
// its cookie, so that its flows are replaced.
type Flow struct {
	Table        uint8
	Priority     uint16
	Cookie       uint64
	Match        openflow.Match
	Instructions []openflow.Instruction
}

// CookieSpace is the part of the cookie that marks a flow as ours: every
// cookie we use has Value on the Mask bits, and the flow dump asks only for
// those.
type CookieSpace struct {
	Value uint64
	Mask  uint64
}

// Owns reports whether cookie lies in the space.
func (s CookieSpace) Owns(cookie uint64) bool { return cookie&s.Mask == s.Value }

// Cookie names the owner of a flow inside the space's top byte: the kind of
// object (network, port, router...), its id, and a generation that changes
// whenever the object's flows must be replaced rather than kept.
//
//	63      56 55    48 47                  16 15          0
//	| space   | kind   | object id           | generation   |
func (s CookieSpace) Cookie(kind uint8, object uint32, generation uint16) uint64 {
	return s.Value | uint64(kind)<<48 | uint64(object)<<16 | uint64(generation)
}

// ParseCookie splits a cookie made by CookieSpace.Cookie, for tools that
// group flows by owner.
func ParseCookie(c uint64) (kind uint8, object uint32, generation uint16) {
	return uint8(c >> 48), uint32(c >> 16), uint16(c)
}

// Plan is the difference between the flows installed and those wanted.
type Plan struct {
	Add    []openflow.FlowMod // new flows, and flows whose owner changed (new cookie)
	Modify []openflow.FlowMod // same owner, other instructions: MODIFY_STRICT keeps the counters
	Delete []openflow.FlowMod // ours and no longer wanted
}

// Len is the number of flow mods in the plan.
func (p Plan) Len() int { return len(p.Add) + len(p.Modify) + len(p.Delete) }

// Messages returns the plan's flow mods in the order a bundle should carry
// them: deletions first, so that an add never collides with a flow on its
// way out.
func (p Plan) Messages() []openflow.Message {
	out := make([]openflow.Message, 0, p.Len())
	for _, group := range [][]openflow.FlowMod{p.Delete, p.Modify, p.Add} {
		for i := range group {
			out = append(out, &group[i])
		}
	}
	return out
}

// flowKey identifies a flow in a table as OpenFlow does: table, priority and
// match (OF1.3 §6.4: a flow with an identical match and priority replaces).
// The match is canonical, since the switch may report fields in another
// order than we sent them.
type flowKey struct {
	table    uint8
	priority uint16
	match    string
}

// Diff computes what turns installed into desired. Installed flows outside
// space are ignored. Two desired flows with one key are an error: the second
// would silently replace the first.
func Diff(space CookieSpace, desired []Flow, installed []openflow.FlowStats) (Plan, error) {
	want := make(map[flowKey]*Flow, len(desired))
	for i := range desired {
		f := &desired[i]
		if !space.Owns(f.Cookie) {
			return Plan{}, fmt.Errorf("desired flow %s has cookie %#x outside our space %#x/%#x", describe(f), f.Cookie, space.Value, space.Mask)
		}
		k := flowKey{f.Table, f.Priority, canonicalMatch(f.Match)}
		if other, dup := want[k]; dup {
			return Plan{}, fmt.Errorf("flows %s (cookie %#x) and cookie %#x have the same table, priority and match", describe(f), f.Cookie, other.Cookie)
		}
		want[k] = f
	}
	var plan Plan
	seen := make(map[flowKey]bool, len(installed))
	for i := range installed {
		s := &installed[i]
		if !space.Owns(s.Cookie) {
			continue
		}
		k := flowKey{s.TableID, s.Priority, canonicalMatch(s.Match)}
		seen[k] = true
		f, ok := want[k]
		switch {
		case !ok:
			plan.Delete = append(plan.Delete, openflow.FlowMod{
				Cookie: s.Cookie, CookieMask: ^uint64(0), TableID: s.TableID, Command: openflow.FlowDeleteStrict,
				Priority: s.Priority, BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: openflow.GroupAny,
				Match: s.Match,
			})
		case f.Cookie != s.Cookie:
			plan.Add = append(plan.Add, addMod(f))
		case !sameInstructions(f.Instructions, s.Instructions):
			m := addMod(f)
			m.Command, m.CookieMask = openflow.FlowModifyStrict, ^uint64(0)
			plan.Modify = append(plan.Modify, m)
		}
	}
	for i := range desired {
		f := &desired[i]
		if !seen[flowKey{f.Table, f.Priority, canonicalMatch(f.Match)}] {
			plan.Add = append(plan.Add, addMod(f))
		}
	}
	return plan, nil
}

func addMod(f *Flow) openflow.FlowMod {
	return openflow.FlowMod{
		Cookie: f.Cookie, TableID: f.Table, Command: openflow.FlowAdd, Priority: f.Priority,
		BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: openflow.GroupAny,
		Match: f.Match, Instructions: f.Instructions,
	}
}

// canonicalMatch renders a match independent of field order and of the ways
// one condition can be written: value bits outside the mask cleared, and an
// all-ones mask dropped.
func canonicalMatch(m openflow.Match) string {
	fields := make([]openflow.OXM, len(m.Fields))
	for i, f := range m.Fields {
		if f.Mask != nil {
			v := make([]byte, len(f.Value))
			allOnes := true
			for j := range v {
				if j < len(f.Mask) {
					v[j] = f.Value[j] & f.Mask[j]
					allOnes = allOnes && f.Mask[j] == 0xff
				}
			}
			f.Value = v
			if allOnes {
				f.Mask = nil
			}
		}
		fields[i] = f
	}
	slices.SortFunc(fields, func(a, b openflow.OXM) int {
		return cmp.Or(cmp.Compare(a.Class, b.Class), cmp.Compare(a.Experimenter, b.Experimenter), cmp.Compare(a.Field, b.Field))
	})
	var b []byte
	for _, f := range fields {
		b = binary.BigEndian.AppendUint16(b, f.Class)
		b = binary.BigEndian.AppendUint32(b, f.Experimenter)
		b = append(b, f.Field, byte(len(f.Value)), byte(len(f.Mask)))
		b = append(b, f.Value...)
		b = append(b, f.Mask...)
	}
	return string(b)
}

// sameInstructions compares instruction lists by their encoding, the only
// form in which the switch's report and our wish are certain to agree.
func sameInstructions(a, b []openflow.Instruction) bool {
	ea, erra := openflow.Marshal(0, &openflow.FlowMod{Instructions: a})
	eb, errb := openflow.Marshal(0, &openflow.FlowMod{Instructions: b})
	return erra == nil && errb == nil && bytes.Equal(ea, eb)
}

func describe(f *Flow) string {
	return fmt.Sprintf("table=%d priority=%d", f.Table, f.Priority)
}

package flowset

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// Plan is the difference between what is installed and what is wanted.
type Plan struct {
	GroupAdd    []openflow.GroupMod
	GroupModify []openflow.GroupMod
	Add         []openflow.FlowMod // new flows, and flows whose owner changed (new cookie)
	Modify      []openflow.FlowMod // same owner, other instructions: MODIFY_STRICT keeps the counters
	Delete      []openflow.FlowMod // ours and no longer wanted
	GroupDelete []openflow.GroupMod
	// Meter mods go outside the bundle (OVS bundles no METER_MOD):
	// see MeterMessages.
	MeterAdd    []openflow.MeterMod
	MeterModify []openflow.MeterMod
	MeterDelete []openflow.MeterMod
}

// Len is the number of messages in the plan.
func (p Plan) Len() int {
	return len(p.Add) + len(p.Modify) + len(p.Delete) + len(p.GroupAdd) + len(p.GroupModify) + len(p.GroupDelete) +
		len(p.MeterAdd) + len(p.MeterModify) + len(p.MeterDelete)
}

// MeterMessages returns the meter mods of plans applied in order, as the
// switch must take them around the bundle that carries the plans' flows
// and groups (Messages): before it the meters its flows will use (adds,
// modifies), since a flow naming a missing meter fails the bundle; after
// it the meters no flow uses any more (deletes), since OVS deletes a
// meter's flows with it. A meter several plans touch gets one mod, from
// what it was before the first to what it is after the last: a port
// detached and another attached on the same ofport in one batch keep the
// meter, where an add of it would fail and a delete would take the new
// port's flows.
func MeterMessages(plans ...Plan) (before, after []openflow.Message) {
	type fate struct {
		existed bool               // before the first plan that touches it
		final   *openflow.MeterMod // after the last; nil: deleted
	}
	var order []uint32
	fates := map[uint32]*fate{}
	touch := func(mod *openflow.MeterMod, existed, stays bool) {
		f, ok := fates[mod.MeterID]
		if !ok {
			f = &fate{existed: existed}
			fates[mod.MeterID] = f
			order = append(order, mod.MeterID)
		}
		f.final = nil
		if stays {
			f.final = mod
		}
	}
	for i := range plans {
		p := &plans[i]
		for j := range p.MeterAdd {
			touch(&p.MeterAdd[j], false, true)
		}
		for j := range p.MeterModify {
			touch(&p.MeterModify[j], true, true)
		}
		for j := range p.MeterDelete {
			touch(&p.MeterDelete[j], true, false)
		}
	}
	for _, id := range order {
		f := fates[id]
		switch {
		case f.final != nil && f.existed:
			m := *f.final
			m.Command = openflow.MeterModify
			before = append(before, &m)
		case f.final != nil:
			// An add is a delete, a no-op for a meter the switch does
			// not have, then the add: a meter left over by a change that
			// failed after its meters went, or by a delete that failed,
			// holds no flow of ours, and must not fail this change
			// (OFPMMFC_METER_EXISTS).
			m := *f.final
			m.Command = openflow.MeterAdd
			before = append(before, &openflow.MeterMod{Command: openflow.MeterDelete, MeterID: id}, &m)
		case f.existed:
			after = append(after, &openflow.MeterMod{Command: openflow.MeterDelete, MeterID: id})
		}
	}
	return before, after
}

// Messages returns the plan in the order a bundle should carry it: groups
// exist before the flows that use them arrive and go after those flows
// left, and flow deletions come first, so that an add never collides with a
// flow on its way out.
func (p Plan) Messages() []openflow.Message {
	out := make([]openflow.Message, 0, p.Len())
	for _, group := range [][]openflow.GroupMod{p.GroupAdd, p.GroupModify} {
		for i := range group {
			out = append(out, &group[i])
		}
	}
	for _, group := range [][]openflow.FlowMod{p.Delete, p.Modify, p.Add} {
		for i := range group {
			out = append(out, &group[i])
		}
	}
	for i := range p.GroupDelete {
		out = append(out, &p.GroupDelete[i])
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

// installed presents a desired state as if a switch had reported it, so that
// the difference between two desired states is computed like any other.
func (d Desired) installed() Installed {
	in := Installed{Flows: make([]openflow.FlowStats, len(d.Flows)), Groups: make([]openflow.GroupDesc, len(d.Groups)),
		Meters: make([]openflow.MeterConfig, len(d.Meters))}
	for i, f := range d.Flows {
		in.Flows[i] = openflow.FlowStats{TableID: f.Table, Priority: f.Priority, Cookie: f.Cookie, Match: f.Match, Instructions: f.Instructions}
	}
	for i, g := range d.Groups {
		in.Groups[i] = openflow.GroupDesc{GroupID: g.ID, GroupType: g.Type, Buckets: g.Buckets}
	}
	for i, m := range d.Meters {
		in.Meters[i] = m.config()
	}
	return in
}

// Change computes what turns the switch from before into after, for an
// update of a few objects whose flows are known without asking the switch.
func Change(space CookieSpace, before, after Desired) (Plan, error) {
	return Diff(space, after, before.installed())
}

// Diff computes what turns installed into desired. Installed flows and
// groups outside space are ignored. Two desired flows with one key, or two
// groups or meters with one ID, are an error: the second would silently
// replace the first.
func Diff(space CookieSpace, desired Desired, installed Installed) (Plan, error) {
	var plan Plan
	if err := diffFlows(&plan, space, desired.Flows, installed.Flows); err != nil {
		return Plan{}, err
	}
	if err := diffGroups(&plan, space, desired.Groups, installed.Groups); err != nil {
		return Plan{}, err
	}
	if err := diffMeters(&plan, space, desired.Meters, installed.Meters); err != nil {
		return Plan{}, err
	}
	return plan, nil
}

func diffFlows(plan *Plan, space CookieSpace, desired []Flow, installed []openflow.FlowStats) error {
	want := make(map[flowKey]*Flow, len(desired))
	for i := range desired {
		f := &desired[i]
		if !space.Owns(f.Cookie) {
			return fmt.Errorf("desired flow %s has cookie %#x outside our space %#x/%#x", describe(f), f.Cookie, space.Value, space.Mask)
		}
		k := flowKey{f.Table, f.Priority, canonicalMatch(f.Match)}
		if other, dup := want[k]; dup {
			return fmt.Errorf("flows %s (cookie %#x) and cookie %#x have the same table, priority and match", describe(f), f.Cookie, other.Cookie)
		}
		want[k] = f
	}
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
	return nil
}

func diffGroups(plan *Plan, space CookieSpace, desired []Group, installed []openflow.GroupDesc) error {
	want := make(map[uint32]*Group, len(desired))
	for i := range desired {
		g := &desired[i]
		if !space.OwnsGroup(g.ID) {
			return fmt.Errorf("desired group %#x lies outside our group range", g.ID)
		}
		if _, dup := want[g.ID]; dup {
			return fmt.Errorf("group %#x is desired twice", g.ID)
		}
		want[g.ID] = g
	}
	seen := make(map[uint32]bool, len(installed))
	for _, s := range installed {
		if !space.OwnsGroup(s.GroupID) {
			continue
		}
		seen[s.GroupID] = true
		g, ok := want[s.GroupID]
		switch {
		case !ok:
			plan.GroupDelete = append(plan.GroupDelete, openflow.GroupMod{Command: openflow.GroupDelete, GroupType: s.GroupType, GroupID: s.GroupID})
		case g.Type != s.GroupType || !sameBuckets(g.Buckets, s.Buckets):
			plan.GroupModify = append(plan.GroupModify, openflow.GroupMod{Command: openflow.GroupModify, GroupType: g.Type, GroupID: g.ID, Buckets: g.Buckets})
		}
	}
	for _, g := range desired {
		if !seen[g.ID] {
			plan.GroupAdd = append(plan.GroupAdd, openflow.GroupMod{Command: openflow.GroupAdd, GroupType: g.Type, GroupID: g.ID, Buckets: g.Buckets})
		}
	}
	return nil
}

func diffMeters(plan *Plan, space CookieSpace, desired []Meter, installed []openflow.MeterConfig) error {
	want := make(map[uint32]openflow.MeterConfig, len(desired))
	for _, m := range desired {
		if !space.OwnsMeter(m.ID) {
			return fmt.Errorf("desired meter %#x lies outside our meter range", m.ID)
		}
		if _, dup := want[m.ID]; dup {
			return fmt.Errorf("meter %#x is desired twice", m.ID)
		}
		want[m.ID] = m.config()
	}
	seen := make(map[uint32]bool, len(installed))
	for _, s := range installed {
		if !space.OwnsMeter(s.MeterID) {
			continue
		}
		seen[s.MeterID] = true
		m, ok := want[s.MeterID]
		switch {
		case !ok:
			plan.MeterDelete = append(plan.MeterDelete, openflow.MeterMod{Command: openflow.MeterDelete, MeterID: s.MeterID})
		case !sameMeter(m, s):
			plan.MeterModify = append(plan.MeterModify, meterMod(openflow.MeterModify, m))
		}
	}
	for _, m := range desired {
		if !seen[m.ID] {
			plan.MeterAdd = append(plan.MeterAdd, meterMod(openflow.MeterAdd, m.config()))
		}
	}
	return nil
}

func meterMod(cmd openflow.MeterModCommand, c openflow.MeterConfig) openflow.MeterMod {
	return openflow.MeterMod{Command: cmd, MeterID: c.MeterID, Flags: c.Flags, Bands: c.Bands}
}

// sameMeter compares meters by what they do: the band fields that no
// band of ours uses are left out.
func sameMeter(a, b openflow.MeterConfig) bool {
	return a.Flags == b.Flags && slices.EqualFunc(a.Bands, b.Bands, func(x, y openflow.MeterBand) bool {
		return x.Type == y.Type && x.Rate == y.Rate && x.BurstSize == y.BurstSize && x.PrecLevel == y.PrecLevel
	})
}

// sameBuckets compares buckets by their encoding, like sameInstructions.
func sameBuckets(a, b []openflow.Bucket) bool {
	ea, erra := openflow.Marshal(0, &openflow.GroupMod{Buckets: a})
	eb, errb := openflow.Marshal(0, &openflow.GroupMod{Buckets: b})
	return erra == nil && errb == nil && bytes.Equal(ea, eb)
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

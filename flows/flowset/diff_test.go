package flowset_test

import (
	"slices"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset/flowsettest"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

var space = flowset.CookieSpace{Value: 0x7600000000000000, Mask: 0xff00000000000000}

func TestCookieLayout(t *testing.T) {
	c := space.Cookie(3, 0xdeadbeef, 7)
	if c != 0x7603deadbeef0007 || !space.Owns(c) {
		t.Fatalf("cookie %#x", c)
	}
	if kind, obj, gen := flowset.ParseCookie(c); kind != 3 || obj != 0xdeadbeef || gen != 7 {
		t.Fatalf("parsed %d %#x %d", kind, obj, gen)
	}
}

func TestDiffIsMinimal(t *testing.T) {
	base := flowsettest.Flows(3, space.Value|1)
	installed := make([]openflow.FlowStats, len(base))
	for i, f := range base {
		// The switch reports the match in its own order and with a redundant mask.
		m := f.Match
		m.Fields = append([]openflow.OXM(nil), m.Fields...)
		m.Fields[0].Mask = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		installed[i] = openflow.FlowStats{TableID: f.Table, Priority: f.Priority, Cookie: f.Cookie, Match: m, Instructions: f.Instructions}
	}
	installed = append(installed, openflow.FlowStats{TableID: 0, Priority: 1, Cookie: 0x1}) // foreign

	plan, err := flowset.Diff(space, flowset.Desired{Flows: base}, flowset.Installed{Flows: installed})
	if err != nil || plan.Len() != 0 {
		t.Fatalf("unchanged set: plan %+v, %v", plan, err)
	}
	changed := flowsettest.Flows(3, space.Value|1)
	changed[0].Cookie = space.Value | 2                                                     // owner changed → add (replace)
	changed[1].Instructions = []openflow.Instruction{openflow.ApplyActions{}}               // same owner → modify
	changed = changed[:2]                                                                   // third gone → delete
	changed = append(changed, flowset.Flow{Table: 1, Priority: 5, Cookie: space.Value | 3}) // new → add
	plan, err = flowset.Diff(space, flowset.Desired{Flows: changed}, flowset.Installed{Flows: installed})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Add) != 2 || len(plan.Modify) != 1 || len(plan.Delete) != 1 {
		t.Fatalf("plan: %d add, %d modify, %d delete", len(plan.Add), len(plan.Modify), len(plan.Delete))
	}
	if d := plan.Delete[0]; d.Cookie != installed[2].Cookie || d.CookieMask != ^uint64(0) || d.Command != openflow.FlowDeleteStrict {
		t.Fatalf("delete must be strict and pinned to our cookie: %+v", d)
	}
	if _, err := flowset.Diff(space, flowset.Desired{Flows: []flowset.Flow{{Cookie: 0x1}}}, flowset.Installed{}); err == nil {
		t.Fatal("a desired flow outside our cookie space was accepted")
	}
	if _, err := flowset.Diff(space, flowset.Desired{Flows: append(flowsettest.Flows(1, space.Value), flowsettest.Flows(1, space.Value|9)...)}, flowset.Installed{}); err == nil {
		t.Fatal("two desired flows with one key were accepted")
	}
}

func TestGroupRange(t *testing.T) {
	if id := space.Group(5); id != 0x76000005 || !space.OwnsGroup(id) || space.OwnsGroup(5) {
		t.Fatalf("group id %#x", id)
	}
}

func TestChangeTouchesOnlyTheDifference(t *testing.T) {
	flows := flowsettest.Flows(3, space.Value|1)
	before := flowset.Desired{Flows: flows[:2], Groups: []flowset.Group{flowsettest.FloodGroup(space, 1, 1, 2), flowsettest.FloodGroup(space, 2, 5)}}
	after := flowset.Desired{Flows: flows[1:], Groups: []flowset.Group{flowsettest.FloodGroup(space, 1, 1, 2, 3), flowsettest.FloodGroup(space, 3)}}
	p, err := flowset.Change(space, before, after)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Add) != 1 || len(p.Delete) != 1 || len(p.Modify) != 0 ||
		len(p.GroupAdd) != 1 || len(p.GroupModify) != 1 || len(p.GroupDelete) != 1 {
		t.Fatalf("plan %+v", p)
	}
	msgs := p.Messages()
	if _, ok := msgs[0].(*openflow.GroupMod); !ok {
		t.Fatalf("groups must come before the flows that use them: %T first", msgs[0])
	}
	if g, ok := msgs[len(msgs)-1].(*openflow.GroupMod); !ok || g.Command != openflow.GroupDelete {
		t.Fatalf("group deletions must come last: %T", msgs[len(msgs)-1])
	}
	if _, err := flowset.Change(space, flowset.Desired{}, flowset.Desired{Groups: []flowset.Group{{ID: 7}}}); err == nil {
		t.Fatal("a group outside our range was accepted")
	}
}

func TestMeterRange(t *testing.T) {
	if id := space.Meter(1, 0x1234); id != 0x76011234 || !space.OwnsMeter(id) || space.OwnsMeter(0x01011234) {
		t.Fatalf("meter id %#x", id)
	}
}

// TestDiffMeters: a meter is added, modified or deleted only when it
// differs, foreign meters are never touched, and meters stay out of the
// bundle's messages.
func TestDiffMeters(t *testing.T) {
	m := func(id, rate uint32) flowset.Meter {
		return flowset.Meter{ID: space.Meter(0, uint16(id)), Rate: rate, Burst: 5}
	}
	// As OVS reports them; and a foreign meter.
	var installed flowset.Installed
	for _, id := range []uint32{1, 2, 3} {
		installed.Meters = append(installed.Meters, openflow.MeterConfig{MeterID: m(id, 0).ID,
			Flags: openflow.MeterFlagPktps | openflow.MeterFlagBurst | openflow.MeterFlagStats,
			Bands: []openflow.MeterBand{{Type: openflow.MeterBandDrop, Rate: 10, BurstSize: 5}}})
	}
	installed.Meters = append(installed.Meters, openflow.MeterConfig{MeterID: 7, Flags: openflow.MeterFlagKbps})
	plan, err := flowset.Diff(space, flowset.Desired{Meters: []flowset.Meter{m(1, 10), m(2, 10), m(3, 10)}}, installed)
	if err != nil || plan.Len() != 0 {
		t.Fatalf("unchanged meters: plan %+v, %v", plan, err)
	}
	plan, err = flowset.Diff(space, flowset.Desired{Meters: []flowset.Meter{m(1, 10), m(2, 20), m(4, 10)}}, installed)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.MeterAdd) != 1 || plan.MeterAdd[0].MeterID != m(4, 0).ID || plan.MeterAdd[0].Command != openflow.MeterAdd ||
		len(plan.MeterModify) != 1 || plan.MeterModify[0].MeterID != m(2, 0).ID || plan.MeterModify[0].Bands[0].Rate != 20 ||
		len(plan.MeterDelete) != 1 || plan.MeterDelete[0].MeterID != m(3, 0).ID || plan.Len() != 3 {
		t.Fatalf("plan %+v", plan)
	}
	if len(plan.Messages()) != 0 {
		t.Fatalf("meter mods in the bundle: %v", plan.Messages())
	}
	for _, d := range []flowset.Desired{{Meters: []flowset.Meter{{ID: 9}}}, {Meters: []flowset.Meter{m(1, 1), m(1, 2)}}} {
		if _, err := flowset.Diff(space, d, flowset.Installed{}); err == nil {
			t.Errorf("desired meters %+v accepted", d.Meters)
		}
	}
}

// TestMeterMessages: around one bundle, meters its flows use come before
// and meters no flow uses after; several plans touching one meter give
// the one mod from its first state to its last.
func TestMeterMessages(t *testing.T) {
	meter := func(rate uint32) flowset.Desired {
		return flowset.Desired{Meters: []flowset.Meter{{ID: space.Meter(1, 5), Rate: rate, Burst: 20}}}
	}
	change := func(before, after flowset.Desired) flowset.Plan {
		p, err := flowset.Change(space, before, after)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	none := flowset.Desired{}
	attach, detach, modify := change(none, meter(10)), change(meter(10), none), change(meter(10), meter(20))
	type mod struct {
		cmd  openflow.MeterModCommand
		rate uint32
	}
	read := func(msgs []openflow.Message) []mod {
		var out []mod
		for _, m := range msgs {
			mm := m.(*openflow.MeterMod)
			r := mod{cmd: mm.Command}
			if len(mm.Bands) > 0 {
				r.rate = mm.Bands[0].Rate
			}
			out = append(out, r)
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		plans         []flowset.Plan
		before, after []mod
	}{
		{"attach", []flowset.Plan{attach}, []mod{{openflow.MeterDelete, 0}, {openflow.MeterAdd, 10}}, nil},
		{"detach", []flowset.Plan{detach}, nil, []mod{{openflow.MeterDelete, 0}}},
		{"modify", []flowset.Plan{modify}, []mod{{openflow.MeterModify, 20}}, nil},
		{"detach, attach on the same ofport", []flowset.Plan{detach, attach}, []mod{{openflow.MeterModify, 10}}, nil},
		{"attach, detach", []flowset.Plan{attach, detach}, nil, nil},
		{"attach, modify", []flowset.Plan{attach, modify}, []mod{{openflow.MeterDelete, 0}, {openflow.MeterAdd, 20}}, nil},
		{"modify, detach", []flowset.Plan{modify, detach}, nil, []mod{{openflow.MeterDelete, 0}}},
	} {
		before, after := flowset.MeterMessages(tc.plans...)
		if got := read(before); !slices.Equal(got, tc.before) {
			t.Errorf("%s: before the bundle %v, want %v", tc.name, got, tc.before)
		}
		if got := read(after); !slices.Equal(got, tc.after) {
			t.Errorf("%s: after the bundle %v, want %v", tc.name, got, tc.after)
		}
	}
}

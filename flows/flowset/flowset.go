// Package flowset is what the controller wants on a bridge — flows, groups,
// meters, and the cookie space that marks them ours — and the pure difference
// between two such states. The compiler (flows/pipeline) produces flow sets
// and the applier (flows/reconcile) sends their differences, so neither
// knows the other.
package flowset

import "github.com/ovs-vnet/ovs-vnet/flows/openflow"

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

// groupRange is the top byte of a group ID: ours carry the cookie space's top
// byte there, so groups need no other mark of ownership.
const groupRange = 0xff000000

// Group returns the ID of our group number n (below 1<<24).
func (s CookieSpace) Group(n uint32) uint32 {
	return uint32(s.Value>>32)&groupRange | n&^groupRange
}

// OwnsGroup reports whether a group ID lies in the space's group range.
func (s CookieSpace) OwnsGroup(id uint32) bool {
	return id&groupRange == uint32(s.Value>>32)&groupRange
}

// Meter returns the ID of our meter of kind and object: the space's top
// byte, as for groups, then the kind and the object.
//
//	31      24 23    16 15          0
//	| space   | kind   | object       |
func (s CookieSpace) Meter(kind uint8, object uint16) uint32 {
	return uint32(s.Value>>32)&groupRange | uint32(kind)<<16 | uint32(object)
}

// OwnsMeter reports whether a meter ID lies in the space's range, which is
// the groups'.
func (s CookieSpace) OwnsMeter(id uint32) bool { return s.OwnsGroup(id) }

// ParseCookie splits a cookie made by CookieSpace.Cookie, for tools that
// group flows by owner.
func ParseCookie(c uint64) (kind uint8, object uint32, generation uint16) {
	return uint8(c >> 48), uint32(c >> 16), uint16(c)
}

// Group is a group the controller wants on a bridge. Its ID lies in the
// cookie space's group range (CookieSpace.Group).
type Group struct {
	ID      uint32
	Type    openflow.GroupType
	Buckets []openflow.Bucket
}

// Meter is a meter the controller wants on a bridge: Rate packets a
// second with bursts of Burst packets, beyond which its one band drops;
// the switch counts what it passed and dropped. Its ID lies in the cookie
// space's range (CookieSpace.Meter).
type Meter struct {
	ID, Rate, Burst uint32
}

// config is the meter as the switch reports it.
func (m Meter) config() openflow.MeterConfig {
	return openflow.MeterConfig{MeterID: m.ID, Flags: openflow.MeterFlagPktps | openflow.MeterFlagBurst | openflow.MeterFlagStats,
		Bands: []openflow.MeterBand{{Type: openflow.MeterBandDrop, Rate: m.Rate, BurstSize: m.Burst}}}
}

// Desired is everything the controller wants on one bridge.
type Desired struct {
	Flows  []Flow
	Groups []Group
	Meters []Meter
}

// Installed is what a bridge reports it holds.
type Installed struct {
	Flows  []openflow.FlowStats
	Groups []openflow.GroupDesc
	Meters []openflow.MeterConfig
}

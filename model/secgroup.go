package model

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// Direction is the side of a port a rule judges: new connections to it
// (Ingress) or from it (Egress).
type Direction uint8

// Directions; the zero Direction is none, so that a rule the JSON left
// without one is no rule of either side.
const (
	Ingress Direction = iota + 1
	Egress
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return v1.DirIngress
	case Egress:
		return v1.DirEgress
	}
	return "direction " + strconv.Itoa(int(d))
}

// MarshalText writes the API's word, so that a stored rule reads as the
// request did.
func (d Direction) MarshalText() ([]byte, error) {
	if d != Ingress && d != Egress {
		return nil, fmt.Errorf("marshal %v: not ingress or egress", d)
	}
	return []byte(d.String()), nil
}

// UnmarshalText reads the API's word.
func (d *Direction) UnmarshalText(b []byte) error {
	switch string(b) {
	case v1.DirIngress:
		*d = Ingress
	case v1.DirEgress:
		*d = Egress
	default:
		return invalid("direction %q must be ingress or egress", b)
	}
	return nil
}

// IP protocol numbers a rule matches (Rule.Proto, Packet.Proto); ProtoAny
// matches every one.
const (
	ProtoAny  uint8 = 0
	ProtoICMP uint8 = 1
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
)

// protoNames maps the API's protocol names to the numbers a rule holds.
func protoNames() map[string]uint8 {
	return map[string]uint8{v1.ProtoAny: ProtoAny, v1.ProtoICMP: ProtoICMP, v1.ProtoTCP: ProtoTCP, v1.ProtoUDP: ProtoUDP}
}

// Rule is an allow rule of a security group, parsed: what both backends
// compile, and Policy.Allows judges by.
type Rule struct {
	Direction Direction `json:"direction"`
	Proto     uint8     `json:"proto"` // ProtoAny, ProtoICMP, ProtoTCP or ProtoUDP
	// PortMin..PortMax are the destination ports (tcp and udp only); 0, 0
	// is every port.
	PortMin uint16 `json:"port_min,omitempty"`
	PortMax uint16 `json:"port_max,omitempty"`
	// Remote is the peer's prefix, masked; with RemoteGroup "" too, the
	// zero Prefix is any peer.
	Remote netip.Prefix `json:"remote,omitzero"`
	// RemoteGroup is the group whose members' addresses (Policy.Members)
	// the peer must have.
	RemoteGroup string `json:"remote_group,omitempty"`
}

// SecurityGroup is a named list of allow rules that ports list
// (Port.SecurityGroups): the stored form.
type SecurityGroup struct {
	Name string `json:"name"`
	// ID is a small number unique among groups (1 to the store's
	// maximum), assigned at creation and kept when the rules are replaced;
	// the OVS backend's flows name groups by it.
	ID    int    `json:"id"`
	Rules []Rule `json:"rules"`
}

// NewSecurityGroup checks the spec and returns the group it asks for,
// rules in canonical form. It needs no other object: that the groups the
// rules name exist is the caller's to check, and the ID its to assign.
func NewSecurityGroup(name string, s v1.SecurityGroupSpec) (SecurityGroup, error) {
	if err := v1.ValidateName(name); err != nil {
		return SecurityGroup{}, err
	}
	if s.Rules == nil {
		return SecurityGroup{}, invalid("rules is required: [] is a group that allows nothing")
	}
	if len(s.Rules) > v1.MaxRules {
		return SecurityGroup{}, invalid("rules: %d rules, at most %d", len(s.Rules), v1.MaxRules)
	}
	g := SecurityGroup{Name: name, Rules: make([]Rule, 0, len(s.Rules))}
	for i, r := range s.Rules {
		rule, err := newRule(i, r)
		if err != nil {
			return SecurityGroup{}, err
		}
		g.Rules = append(g.Rules, rule)
	}
	return g, nil
}

func newRule(i int, s v1.Rule) (Rule, error) {
	var r Rule
	switch s.Direction {
	case v1.DirIngress:
		r.Direction = Ingress
	case v1.DirEgress:
		r.Direction = Egress
	default:
		return Rule{}, invalid("rules[%d].direction must be ingress or egress, not %q", i, s.Direction)
	}
	proto, ok := protoNames()[cmp.Or(s.Protocol, v1.ProtoAny)]
	if !ok {
		return Rule{}, invalid("rules[%d].protocol must be tcp, udp, icmp or any, not %q", i, s.Protocol)
	}
	r.Proto = proto
	if s.Ports != "" {
		if proto != ProtoTCP && proto != ProtoUDP {
			return Rule{}, invalid("rules[%d].ports applies to tcp and udp only", i)
		}
		if r.PortMin, r.PortMax, ok = parsePorts(s.Ports); !ok {
			return Rule{}, invalid("rules[%d].ports: %q is not a port range: N or N-M, 1 ≤ N ≤ M ≤ 65535", i, s.Ports)
		}
	}
	if s.Remote != "" && s.RemoteGroup != "" {
		return Rule{}, invalid("rules[%d]: remote and remote_group exclude each other", i)
	}
	if s.Remote != "" {
		p, err := netip.ParsePrefix(s.Remote)
		if err != nil || !p.Addr().Is4() {
			return Rule{}, invalid("rules[%d].remote: %q is not an IPv4 CIDR such as 10.0.0.0/8", i, s.Remote)
		}
		r.Remote = p.Masked()
	}
	if s.RemoteGroup != "" {
		if err := v1.ValidateName(s.RemoteGroup); err != nil {
			return Rule{}, fmt.Errorf("rules[%d].remote_group: %w", i, err)
		}
		r.RemoteGroup = s.RemoteGroup
	}
	return r, nil
}

// parsePorts reads "N" or "N-M", 1 ≤ N ≤ M ≤ 65535, in decimal.
func parsePorts(s string) (lo, hi uint16, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	if !isRange {
		b = a
	}
	l, errL := strconv.ParseUint(a, 10, 16)
	h, errH := strconv.ParseUint(b, 10, 16)
	if errL != nil || errH != nil || l == 0 || l > h {
		return 0, 0, false
	}
	return uint16(l), uint16(h), true
}

// SameSpec reports whether two groups have the same name and rules; the
// ID does not count.
func (g SecurityGroup) SameSpec(o SecurityGroup) bool {
	return g.Name == o.Name && slices.Equal(g.Rules, o.Rules)
}

// References are the other groups g's rules name in remote_group, sorted,
// without repeats: those that must exist while g does. A group naming
// itself needs nothing else, and is no reason to keep it.
func (g SecurityGroup) References() []string {
	var refs []string
	for _, r := range g.Rules {
		if r.RemoteGroup != "" && r.RemoteGroup != g.Name {
			refs = append(refs, r.RemoteGroup)
		}
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// Has reports whether any rule of g judges direction d.
func (g SecurityGroup) Has(d Direction) bool {
	return slices.ContainsFunc(g.Rules, func(r Rule) bool { return r.Direction == d })
}

// View renders the group for the API with the ports that list it and the
// groups that name it, both sorted by the caller.
func (g SecurityGroup) View(ports, referencedBy []string) v1.SecurityGroup {
	v := v1.SecurityGroup{Name: g.Name, ID: g.ID, Rules: make([]v1.Rule, 0, len(g.Rules)),
		Ports: ports, ReferencedBy: referencedBy}
	for _, r := range g.Rules {
		v.Rules = append(v.Rules, r.View())
	}
	// The API writes lists, never null.
	if v.Ports == nil {
		v.Ports = []string{}
	}
	if v.ReferencedBy == nil {
		v.ReferencedBy = []string{}
	}
	return v
}

// View renders the rule in canonical form: the protocol always given, a
// port range of one port as "N", remote masked.
func (r Rule) View() v1.Rule {
	v := v1.Rule{Direction: r.Direction.String(), Protocol: v1.ProtoAny, RemoteGroup: r.RemoteGroup}
	for name, p := range protoNames() {
		if p == r.Proto {
			v.Protocol = name
		}
	}
	switch {
	case r.PortMin == 0:
	case r.PortMin == r.PortMax:
		v.Ports = strconv.Itoa(int(r.PortMin))
	default:
		v.Ports = fmt.Sprintf("%d-%d", r.PortMin, r.PortMax)
	}
	if r.Remote.IsValid() {
		v.Remote = r.Remote.String()
	}
	return v
}

// GroupList is the security groups a port lists, in canonical form: the
// names sorted, without repeats, joined by ","; "" for none. A string, so
// that Port stays comparable and SameSpec compares the groups with the
// rest. Its JSON is the list of names.
type GroupList string

// NewGroupList checks a port's security_groups and returns them in
// canonical form; that the groups exist is the caller's to check.
func NewGroupList(names []string) (GroupList, error) {
	if len(names) > v1.MaxPortGroups {
		return "", invalid("security_groups: %d groups, at most %d", len(names), v1.MaxPortGroups)
	}
	for i, n := range names {
		if err := v1.ValidateName(n); err != nil {
			return "", fmt.Errorf("security_groups[%d]: %w", i, err)
		}
	}
	sorted := slices.Sorted(slices.Values(names))
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return "", invalid("security_groups: group %q is listed twice", sorted[i])
		}
	}
	return GroupList(strings.Join(sorted, ",")), nil
}

// Names are the groups, sorted; nil for none.
func (l GroupList) Names() []string {
	if l == "" {
		return nil
	}
	return strings.Split(string(l), ",")
}

// Has reports whether the list names group.
func (l GroupList) Has(group string) bool {
	return slices.Contains(l.Names(), group)
}

// MarshalJSON writes the list of names.
func (l GroupList) MarshalJSON() ([]byte, error) {
	names := l.Names()
	if names == nil {
		names = []string{}
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads a list of names, as NewGroupList takes them.
func (l *GroupList) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("security groups: %w", err)
	}
	list, err := NewGroupList(names)
	if err != nil {
		return err
	}
	*l = list
	return nil
}

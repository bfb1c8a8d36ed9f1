package pipeline

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Owner is the object a flow belongs to.
type Owner struct {
	Kind string `json:"kind"` // one of v1.Owner*
	// Name is the network's or port's name; "" for the pipeline, and
	// "#ID" for an object the model does not know (a flow left by a
	// change still under way) — for a remote port its IPv4 address.
	Name string `json:"name,omitempty"`
	// Host is the host of a remote port.
	Host string `json:"host,omitempty"`
}

func (o Owner) String() string { return v1.OwnerString(o.Kind, o.Name, o.Host) }

// Owners names the owners of cookies in one model.
type Owners struct {
	networks map[uint32]string // by network ID
	ports    map[uint32]string // by ofport
	remote   map[uint32]Owner  // by RemoteCookieObject
	groups   map[uint32]string // security groups' names by ID
	members  map[uint32]Owner  // ports by their address (addrObject)
	nat      map[uint32]string // NAT target ports by their address
}

// NewOwners indexes m's networks, attached ports and remote ports.
func NewOwners(m Model) Owners {
	o := Owners{networks: map[uint32]string{}, ports: map[uint32]string{}, remote: map[uint32]Owner{},
		groups: map[uint32]string{}, members: map[uint32]Owner{}, nat: map[uint32]string{}}
	for _, n := range m.Networks {
		o.networks[uint32(n.ID)] = n.Name
	}
	for _, p := range m.Ports {
		if p.Ofport > 0 {
			o.ports[uint32(p.Ofport)] = p.Name
		}
	}
	for _, r := range m.Remote {
		o.remote[RemoteCookieObject(r.Port)] = Owner{Kind: v1.OwnerRemote, Name: r.Port.Name, Host: r.Port.Host}
		o.members[RemoteCookieObject(r.Port)] = Owner{Kind: v1.OwnerMember, Name: r.Port.Name, Host: r.Port.Host}
	}
	for _, p := range m.Ports {
		if p.IP.Is4() {
			o.members[addrObject(p.IP)] = Owner{Kind: v1.OwnerMember, Name: p.Name}
		}
	}
	for _, g := range m.Policy.Groups {
		o.groups[uint32(g.ID)] = g.Name
	}
	for _, f := range m.NAT.Floating {
		o.nat[addrObject(f.IP)] = f.Port
	}
	for _, f := range m.NAT.Forwards {
		o.nat[addrObject(f.IP)] = f.Port
	}
	return o
}

// Of names the owner of a cookie made by this package (see the Kind
// constants); ok is false for a cookie of a kind it never makes.
func (o Owners) Of(cookie uint64) (Owner, bool) {
	kind, object, _ := flowset.ParseCookie(cookie)
	name := func(m map[uint32]string) string {
		if n, ok := m[object]; ok {
			return n
		}
		return "#" + strconv.FormatUint(uint64(object), 10)
	}
	switch kind {
	case KindBase:
		return Owner{Kind: v1.OwnerPipeline}, true
	case KindNetwork:
		return Owner{Kind: v1.OwnerNetwork, Name: name(o.networks)}, true
	case KindRoutes:
		return Owner{Kind: v1.OwnerRoutes, Name: name(o.networks)}, true
	case KindPort:
		return Owner{Kind: v1.OwnerPort, Name: name(o.ports)}, true
	case KindRemote:
		if r, ok := o.remote[object]; ok {
			return r, true
		}
		// Unknown: named by the address the cookie holds.
		return Owner{Kind: v1.OwnerRemote, Name: objectAddr(object).String()}, true
	case KindRule:
		group, ok := o.groups[object>>10]
		if !ok {
			group = "#" + strconv.FormatUint(uint64(object>>10), 10)
		}
		return Owner{Kind: v1.OwnerRule, Name: v1.RuleOwner(group, int(object&ruleIndexMask))}, true
	case KindMember:
		if m, ok := o.members[object]; ok {
			return m, true
		}
		return Owner{Kind: v1.OwnerMember, Name: objectAddr(object).String()}, true
	case KindNAT:
		if port, ok := o.nat[object]; ok {
			return Owner{Kind: v1.OwnerNAT, Name: port}, true
		}
		return Owner{Kind: v1.OwnerNAT, Name: objectAddr(object).String()}, true
	case KindHostBound:
		return Owner{Kind: v1.OwnerNAT, Name: hostBound(object)}, true
	default:
		return Owner{Kind: fmt.Sprintf("kind %d", kind)}, false
	}
}

// Rule names the security group rule whose flow has cookie: its group,
// which the model must know, and its index in the group's rules.
func (o Owners) Rule(cookie uint64) (group string, index int, ok bool) {
	kind, object, _ := flowset.ParseCookie(cookie)
	if kind != KindRule {
		return "", 0, false
	}
	group, ok = o.groups[object>>10]
	return group, int(object & ruleIndexMask), ok
}

// hostBound names a KindHostBound object: a forwarded host port
// ("tcp/8080") or a floating address.
func hostBound(object uint32) string {
	if object >= 1<<24 {
		return objectAddr(object).String()
	}
	proto := "tcp"
	if uint8(object>>16) == model.ProtoUDP {
		proto = "udp"
	}
	return proto + "/" + strconv.FormatUint(uint64(object&0xffff), 10)
}

// objectAddr is the IPv4 address a cookie object holds (addrObject).
func objectAddr(object uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(object >> 24), byte(object >> 16), byte(object >> 8), byte(object)})
}

// StageName is the name of a table of the pipeline, or "table N" for one it
// does not use.
func StageName(table uint8) string {
	for _, s := range Stages() {
		if s.Table == table {
			return s.Name
		}
	}
	return "table " + strconv.Itoa(int(table))
}

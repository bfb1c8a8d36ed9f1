package store

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// The checks both stores make, as pure functions of what the store holds at
// one moment: each store reads that moment in its own transaction, decides
// here, and writes in the same transaction (Bolt) or only if nothing changed
// meanwhile (Etcd).

// MaxNetworkID and MaxRouterID bound the IDs the stores hand out: an ID also
// fits a VLAN tag (and a VNI), and backends name datapath state after it.
const (
	MaxNetworkID = 4094
	MaxRouterID  = 4094
)

// MaxSecurityGroupID bounds security groups' IDs: the OVS backend holds
// one in 16 bits of a register, where 0 is no group.
const MaxSecurityGroupID = 65535

// planNetwork checks a new network against the existing ones and returns it
// with the lowest ID none of them has.
func planNetwork(existing []model.Network, n model.Network) (model.Network, error) {
	if err := validName("network", n.Name); err != nil {
		return n, err
	}
	if !n.Subnet.IsValid() {
		return n, fmt.Errorf("network %q has no subnet", n.Name)
	}
	ids := make([]int, 0, len(existing))
	for _, o := range existing {
		if o.Name == n.Name {
			return n, fmt.Errorf("%w: network %q", ErrExists, n.Name)
		}
		if o.Subnet.Overlaps(n.Subnet) {
			return n, fmt.Errorf("%w: subnet %s overlaps %s of network %q", ErrConflict, n.Subnet, o.Subnet, o.Name)
		}
		ids = append(ids, o.ID)
	}
	id, err := lowestFreeID(ids, MaxNetworkID, "network")
	if err != nil {
		return n, err
	}
	n.ID = id
	return n, nil
}

// planRouter checks a router that creates or replaces the one of its name,
// and returns it with its ID: the one it has when it replaces, else the
// lowest no router has. Its networks must exist.
func planRouter(nets []model.Network, routers []model.Router, r model.Router) (model.Router, error) {
	if err := validName("router", r.Name); err != nil {
		return r, err
	}
	var missing []string
	for _, name := range r.Networks {
		if !hasNetwork(nets, name) {
			missing = append(missing, fmt.Sprintf("%q", name))
		}
	}
	if len(missing) > 0 {
		return r, fmt.Errorf("%w: network %s", ErrNotFound, strings.Join(missing, ", "))
	}
	ids := make([]int, 0, len(routers))
	for _, o := range routers {
		if o.Name == r.Name {
			r.ID = o.ID
			return r, nil
		}
		ids = append(ids, o.ID)
	}
	id, err := lowestFreeID(ids, MaxRouterID, "router")
	r.ID = id
	return r, err
}

// planSecurityGroup checks a group that creates or replaces the one of its
// name, and returns it with its ID: the one it has when it replaces, else
// the lowest no group has. The groups its rules name must exist.
func planSecurityGroup(groups []model.SecurityGroup, g model.SecurityGroup) (model.SecurityGroup, error) {
	if err := validName("security group", g.Name); err != nil {
		return g, err
	}
	stored := make(map[string]int, len(groups))
	for _, o := range groups {
		stored[o.Name] = o.ID
	}
	if err := groupsExist(stored, g.References()); err != nil {
		return g, err
	}
	if id, ok := stored[g.Name]; ok {
		g.ID = id
		return g, nil
	}
	id, err := lowestFreeID(slices.Collect(maps.Values(stored)), MaxSecurityGroupID, "security group")
	g.ID = id
	return g, err
}

// replaced is the stored group of name that a put replaces; the zero
// group when there is none.
func replaced(groups []model.SecurityGroup, name string) model.SecurityGroup {
	if i := slices.IndexFunc(groups, func(o model.SecurityGroup) bool { return o.Name == name }); i >= 0 {
		return groups[i]
	}
	return model.SecurityGroup{}
}

// groupsExist names every listed group that is not stored; stored maps the
// names of those that are (to anything).
func groupsExist[V any](stored map[string]V, names []string) error {
	for _, name := range names {
		if _, ok := stored[name]; !ok {
			return errNoGroup(name)
		}
	}
	return nil
}

func errNoGroup(name string) error {
	return fmt.Errorf("%w: security group %q", ErrNotFound, name)
}

// groupUnused refuses to let a security group go while ports list it or
// other groups' rules name it, naming them so that the client knows what
// to change first: `conflict: security group "web" is used by ports a, b
// and groups db`.
func groupUnused(name string, ports, groups []string) error {
	var users []string
	if len(ports) > 0 {
		users = append(users, "ports "+strings.Join(slices.Sorted(slices.Values(ports)), ", "))
	}
	if len(groups) > 0 {
		users = append(users, "groups "+strings.Join(slices.Sorted(slices.Values(groups)), ", "))
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: security group %q is used by %s", ErrConflict, name, strings.Join(users, " and "))
	}
	return nil
}

func hasNetwork(nets []model.Network, name string) bool {
	return slices.ContainsFunc(nets, func(n model.Network) bool { return n.Name == name })
}

// lowestFreeID is the smallest of 1..limit not in used.
func lowestFreeID(used []int, limit int, what string) (int, error) {
	taken := make(map[int]bool, len(used))
	for _, id := range used {
		taken[id] = true
	}
	for id := 1; id <= limit; id++ {
		if !taken[id] {
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: all %d %s ids are in use", ErrConflict, limit, what)
}

// routersOf names the routers that join network, in name order.
func routersOf(routers []model.Router, network string) []string {
	var names []string
	for _, r := range routers {
		if slices.Contains(r.Networks, network) {
			names = append(names, r.Name)
		}
	}
	slices.Sort(names)
	return names
}

// networkUnused refuses to let a network go while ports or routers use it,
// naming them so that the client knows what to delete first:
// `conflict: network "blue" is used by ports a, b and routers r1`. Ports
// come from the network's ipam keys, where a port holds its address and its
// MAC: each is named once.
func networkUnused(network string, ports, routers []string) error {
	var users []string
	if len(ports) > 0 {
		ports = slices.Compact(slices.Sorted(slices.Values(ports)))
		users = append(users, "ports "+strings.Join(ports, ", "))
	}
	if len(routers) > 0 {
		routers = slices.Sorted(slices.Values(routers))
		users = append(users, "routers "+strings.Join(routers, ", "))
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: network %q is used by %s", ErrConflict, network, strings.Join(users, " and "))
	}
	return nil
}

// checkNewPort checks what a port must have before any store sees it. Its
// MAC must be in the canonical form (v1.ParseMAC), which is the key it is
// held under: two spellings of one MAC must not be two keys.
func checkNewPort(p model.Port) error {
	if err := validName("port", p.Name); err != nil {
		return err
	}
	if p.Network == "" {
		return fmt.Errorf("port %q has no network", p.Name)
	}
	if !p.IP.IsValid() {
		return fmt.Errorf("port %q has no address", p.Name)
	}
	mac, err := v1.ParseMAC(p.MAC)
	switch {
	case p.MAC == "":
		return fmt.Errorf("port %q has no mac", p.Name)
	case err != nil:
		return fmt.Errorf("port %q: %w", p.Name, err)
	case mac != p.MAC:
		return fmt.Errorf("%w: port %q: mac %s is not in canonical form %s", v1.ErrInvalid, p.Name, p.MAC, mac)
	}
	return nil
}

// ErrAddressInUse and ErrMACInUse tell which of a port's unique fields made
// CreatePort refuse it. Both refusals are also ErrConflict.
var (
	ErrAddressInUse = errors.New("address in use")
	ErrMACInUse     = errors.New("mac in use")
)

// inUse is a refusal that is ErrConflict and one of ErrAddressInUse and
// ErrMACInUse, with a message of its own.
type inUse struct {
	msg  string
	kind error
}

func (e *inUse) Error() string   { return e.msg }
func (e *inUse) Unwrap() []error { return []error{ErrConflict, e.kind} }

// Refusals of CreatePort, one for each of the conditions it checks.
func errNoNetwork(network string) error {
	return fmt.Errorf("%w: network %q", ErrNotFound, network)
}

func errPortExists(name string) error {
	return fmt.Errorf("%w: port %q", ErrExists, name)
}

func errAddressInUse(ip netip.Addr, holder string) error {
	return &inUse{fmt.Sprintf("%v: address %s is in use by port %s", ErrConflict, ip, holder), ErrAddressInUse}
}

func errMACInUse(mac, holder, network string) error {
	return &inUse{fmt.Sprintf("%v: mac %s is used by port %s in network %s", ErrConflict, mac, holder, network), ErrMACInUse}
}

func errNoPort(name string) error {
	return fmt.Errorf("%w: port %q", ErrNotFound, name)
}

// checkOwner refuses a change of a port by a host other than its own. A
// record without a host (stored before ports named their host) is any
// host's.
func checkOwner(old model.Port, host string) error {
	if old.Host != "" && old.Host != host {
		return fmt.Errorf("%w: port %q is on host %q, not %q", ErrConflict, old.Name, old.Host, host)
	}
	return nil
}

// checkPortUpdate refuses an update by another host than the port's, and
// one that would move a port to another network or address or give it
// another MAC: those are a new port (delete, then create), since the
// address and the MAC are held under the network, by the port.
func checkPortUpdate(old, p model.Port) error {
	if err := checkOwner(old, p.Host); err != nil {
		return err
	}
	if old.Network != p.Network || old.IP != p.IP {
		return fmt.Errorf("%w: port %q is %s in network %q; an update cannot change them to %s in %q",
			ErrConflict, p.Name, old.IP, old.Network, p.IP, p.Network)
	}
	if old.MAC != p.MAC {
		return fmt.Errorf("%w: port %q has mac %s; an update cannot change it to %s", ErrConflict, p.Name, old.MAC, p.MAC)
	}
	return nil
}

// The keys of a network's ipam: NETWORK/IP holds an address, NETWORK/mac/MAC
// a MAC, each with the holding port's name as value. They cannot collide: an
// address of a subnet in text (no zone) has no slash. Everything a
// network's ports hold is under NETWORK/, which is what a network delete
// looks at (and a network name has no slash either).
func ipamKey(network string, ip netip.Addr) string {
	return network + "/" + ip.String()
}

func macKey(network, mac string) string {
	return network + "/mac/" + mac
}

// validName refuses a name that could not be a key of its own: a store key
// is COLLECTION/NAME (and NETWORK/IP, NETWORK/mac/MAC). The model's naming
// rules say so.
func validName(what, name string) error {
	if err := v1.ValidateName(name); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// PortSpec is the desired state of a port with its one interface.
type PortSpec struct {
	Name        string            // port and interface name (same)
	Type        string            // interface type: "" (system device, e.g. a veth end or tap), "internal", ...
	Tag         int               // access VLAN tag, 0 = none
	ExternalIDs map[string]string // set on both Port and Interface, plus OwnerKey
	// Options are the interface's options, e.g. a tunnel's remote_ip=flow,
	// key=flow and local_ip.
	Options map[string]string
	// OfportRequest asks ovs-vswitchd for this ofport when the port is
	// inserted (0: any); a port that exists keeps the ofport it has.
	OfportRequest int
}

// Port is an owned port as the cache shows it.
type Port struct {
	Name        string
	Tag         int
	Ofport      int // 0 while ovs-vswitchd has not assigned one, -1 if it failed
	ExternalIDs map[string]string
	Type        string // the interface's type ("" for a system device)
}

// AddPort inserts Interface + Port and adds the port to the bridge in one
// transaction. If the port is already ours on that bridge it is updated in
// place (same rows, so its ofport stays); a port of that name that is not
// ours, or is on another bridge, is an error. Ports can only be added to a
// bridge we own. It returns once the cache shows the result.
func (c *Client) AddPort(ctx context.Context, bridge string, spec PortSpec) error {
	if err := c.addPorts(ctx, bridge, []PortSpec{spec}); err != nil {
		return fmt.Errorf("add port %q to bridge %q: %w", spec.Name, bridge, err)
	}
	return nil
}

// AddPorts is AddPort for many ports in one transaction: ovs-vswitchd
// reconfigures the bridge once for all of them, which on a big bridge costs
// about what it costs for one.
func (c *Client) AddPorts(ctx context.Context, bridge string, specs []PortSpec) error {
	if err := c.addPorts(ctx, bridge, specs); err != nil {
		return fmt.Errorf("add %d ports to bridge %q: %w", len(specs), bridge, err)
	}
	return nil
}

func (c *Client) addPorts(ctx context.Context, bridge string, specs []PortSpec) error {
	br, err := c.ownedBridge(ctx, bridge)
	if err != nil {
		return err
	}
	var ops []ovsdb.Operation
	for _, spec := range specs {
		more, err := c.portOps(ctx, br, spec)
		if err != nil {
			return fmt.Errorf("port %q: %w", spec.Name, err)
		}
		ops = append(ops, more...)
	}
	if len(ops) == 0 {
		return nil
	}
	if err := c.transact(ctx, ops); err != nil {
		return err
	}
	return c.waitCache(ctx, "ports in cache", func() (bool, error) {
		br := &vswitch.Bridge{Name: bridge}
		if found, err := c.get(ctx, br); err != nil || !found {
			return false, err
		}
		for _, spec := range specs {
			port := &vswitch.Port{Name: spec.Name}
			if found, err := c.get(ctx, port); err != nil || !found {
				return false, err
			}
			if !slices.Contains(br.Ports, port.UUID) || !portMatches(port, spec) || len(port.Interfaces) != 1 {
				return false, nil
			}
			iface := &vswitch.Interface{UUID: port.Interfaces[0]}
			if found, err := c.get(ctx, iface); err != nil || !found || !interfaceMatches(iface, spec) {
				return false, err
			}
		}
		return true, nil
	})
}

// SetExternalIDs gives ports of ours on the bridge the external IDs of their
// specs (and only those: type and tag stay), in one transaction. Ports that
// are gone are skipped, so a caller's stale list recreates nothing.
func (c *Client) SetExternalIDs(ctx context.Context, bridge string, specs []PortSpec) error {
	br, err := c.ownedBridge(ctx, bridge)
	if err != nil {
		return fmt.Errorf("set external IDs on bridge %q: %w", bridge, err)
	}
	var ops []ovsdb.Operation
	for _, spec := range specs {
		port := &vswitch.Port{Name: spec.Name}
		found, err := c.get(ctx, port)
		if err != nil {
			return fmt.Errorf("set external IDs of port %q: %w", spec.Name, err)
		}
		if !found || !owned(port.ExternalIDs) || !slices.Contains(br.Ports, port.UUID) || len(port.Interfaces) != 1 {
			continue
		}
		spec.Tag, spec.Type = derefTag(port.Tag), ""
		iface := &vswitch.Interface{UUID: port.Interfaces[0]}
		if found, err := c.get(ctx, iface); err != nil || !found {
			continue
		}
		spec.Type, spec.Options = iface.Type, iface.Options
		more, err := c.updatePortOps(ctx, br, port, spec)
		if err != nil {
			return fmt.Errorf("set external IDs of port %q: %w", spec.Name, err)
		}
		ops = append(ops, more...)
	}
	if len(ops) == 0 {
		return nil
	}
	if err := c.transact(ctx, ops); err != nil {
		return fmt.Errorf("set external IDs on bridge %q: %w", bridge, err)
	}
	return nil
}

// portOps are the operations that bring the port to spec: an insert, an
// update, or none.
func (c *Client) portOps(ctx context.Context, br *vswitch.Bridge, spec PortSpec) ([]ovsdb.Operation, error) {
	if spec.Name == "" {
		return nil, errors.New("empty name")
	}
	if spec.Name == br.Name {
		return nil, errors.New("the bridge's own local port is EnsureBridge's to manage")
	}
	if spec.Tag < 0 || spec.Tag > 4095 {
		return nil, fmt.Errorf("tag %d out of range 0-4095", spec.Tag)
	}
	port := &vswitch.Port{Name: spec.Name}
	found, err := c.get(ctx, port)
	if err != nil {
		return nil, fmt.Errorf("read port: %w", err)
	}
	if found {
		return c.updatePortOps(ctx, br, port, spec)
	}
	return c.insertPortOps(br, spec)
}

func (c *Client) insertPortOps(br *vswitch.Bridge, spec PortSpec) ([]ovsdb.Operation, error) {
	ifaceUUID, portUUID := rowUUIDs(spec.Name)
	iface := &vswitch.Interface{UUID: ifaceUUID, Name: spec.Name, Type: spec.Type, Options: spec.Options,
		ExternalIDs: ownedIDs(spec.ExternalIDs)}
	if spec.OfportRequest > 0 {
		iface.OfportRequest = &spec.OfportRequest
	}
	port := &vswitch.Port{UUID: portUUID, Name: spec.Name, Interfaces: []string{iface.UUID}, Tag: optTag(spec.Tag), ExternalIDs: ownedIDs(spec.ExternalIDs)}
	ops, err := c.lc.Create(iface, port)
	if err != nil {
		return nil, fmt.Errorf("build insert: %w", err)
	}
	mut, err := c.lc.Where(br).Mutate(br, model.Mutation{
		Field:   &br.Ports,
		Mutator: ovsdb.MutateOperationInsert,
		Value:   []string{port.UUID},
	})
	if err != nil {
		return nil, fmt.Errorf("build Bridge.ports mutation: %w", err)
	}
	return append(ops, mut...), nil
}

// rowUUIDs are the UUIDs an insert gives the Interface and Port rows of a
// port of that name (ovsdb-server takes a client's UUID for an insert). A
// delete can then name the rows of an insert that has gone out but that
// the cache does not show, because its reply has not come: see
// deletePortOps.
func rowUUIDs(name string) (iface, port string) {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("ovs-vnet:Interface:"+name)).String(),
		uuid.NewSHA1(uuid.NameSpaceURL, []byte("ovs-vnet:Port:"+name)).String()
}

// updatePortOps brings an existing port of ours to spec; no ops when it
// already matches, so a repeated AddPort costs no ovs-vswitchd reconfiguration.
func (c *Client) updatePortOps(ctx context.Context, br *vswitch.Bridge, cur *vswitch.Port, spec PortSpec) ([]ovsdb.Operation, error) {
	if !owned(cur.ExternalIDs) {
		return nil, ErrNotOwned
	}
	if !slices.Contains(br.Ports, cur.UUID) {
		return nil, fmt.Errorf("port exists on another bridge")
	}
	if len(cur.Interfaces) != 1 {
		return nil, fmt.Errorf("port has %d interfaces, want 1", len(cur.Interfaces))
	}
	iface := &vswitch.Interface{UUID: cur.Interfaces[0]}
	if found, err := c.get(ctx, iface); err != nil || !found {
		return nil, fmt.Errorf("read interface %s: %w", iface.UUID, errors.Join(err, errNotInCache(found)))
	}
	if iface.Name != spec.Name {
		return nil, fmt.Errorf("port's interface is named %q", iface.Name)
	}
	var ops []ovsdb.Operation
	if !portMatches(cur, spec) {
		port := &vswitch.Port{UUID: cur.UUID, Tag: optTag(spec.Tag), ExternalIDs: ownedIDs(spec.ExternalIDs)}
		upd, err := c.lc.Where(port).Update(port, &port.Tag, &port.ExternalIDs)
		if err != nil {
			return nil, fmt.Errorf("build port update: %w", err)
		}
		ops = append(ops, upd...)
	}
	if !interfaceMatches(iface, spec) {
		upd := &vswitch.Interface{UUID: iface.UUID, Type: spec.Type, Options: spec.Options, ExternalIDs: ownedIDs(spec.ExternalIDs)}
		op, err := c.lc.Where(upd).Update(upd, &upd.Type, &upd.Options, &upd.ExternalIDs)
		if err != nil {
			return nil, fmt.Errorf("build interface update: %w", err)
		}
		ops = append(ops, op...)
	}
	return ops, nil
}

// WaitOfport waits until ovs-vswitchd has assigned the interface's ofport and
// returns it. It is driven by the monitor's update notifications. An ofport
// of -1 means ovs-vswitchd could not add the interface; the error then
// carries Interface.error.
func (c *Client) WaitOfport(ctx context.Context, ifname string) (int, error) {
	var ofport int
	err := c.waitCache(ctx, "ofport", func() (bool, error) {
		iface := &vswitch.Interface{Name: ifname}
		found, err := c.get(ctx, iface)
		if err != nil || !found || iface.Ofport == nil || *iface.Ofport == 0 {
			return false, err
		}
		ofport = *iface.Ofport
		if ofport < 0 {
			return false, fmt.Errorf("ovs-vswitchd could not add it: %s", derefString(iface.Error))
		}
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("interface %q: %w", ifname, err)
	}
	return ofport, nil
}

// HasPort reports whether the cache has a port of that name, on any bridge.
func (c *Client) HasPort(name string) (bool, error) {
	ctx, cancel, err := c.readContext()
	if err != nil {
		return false, fmt.Errorf("look up port %q: %w", name, err)
	}
	defer cancel()
	found, err := c.get(ctx, &vswitch.Port{Name: name})
	if err != nil {
		return false, fmt.Errorf("look up port %q: %w", name, err)
	}
	return found, nil
}

// DeletePort removes the Port and its Interface from the bridge in one
// transaction. A missing port is success; a port that is not ours is
// ErrNotOwned. It returns once the port is gone from the cache.
func (c *Client) DeletePort(ctx context.Context, bridge, name string) error {
	if err := c.deletePorts(ctx, bridge, []string{name}); err != nil {
		return fmt.Errorf("delete port %q from bridge %q: %w", name, bridge, err)
	}
	return nil
}

// DeletePorts is DeletePort for many ports in one transaction.
func (c *Client) DeletePorts(ctx context.Context, bridge string, names []string) error {
	if err := c.deletePorts(ctx, bridge, names); err != nil {
		return fmt.Errorf("delete %d ports from bridge %q: %w", len(names), bridge, err)
	}
	return nil
}

func (c *Client) deletePorts(ctx context.Context, bridge string, names []string) error {
	br := &vswitch.Bridge{Name: bridge}
	found, err := c.get(ctx, br)
	if err != nil {
		return fmt.Errorf("read bridge: %w", err)
	}
	var ops []ovsdb.Operation
	for _, name := range names {
		more, err := c.deletePortOps(ctx, br, found, name)
		if err != nil {
			return fmt.Errorf("port %q: %w", name, err)
		}
		ops = append(ops, more...)
	}
	if len(ops) == 0 {
		return nil
	}
	if err := c.transact(ctx, ops); err != nil {
		return err
	}
	return c.waitCache(ctx, "ports gone from cache", func() (bool, error) {
		for _, name := range names {
			if found, err := c.get(ctx, &vswitch.Port{Name: name}); err != nil || found {
				return false, err
			}
		}
		return true, nil
	})
}

// deletePortOps removes the port from br (found: br is in the cache) and
// deletes its rows. When the cache shows no such port, the rows an insert
// of ours would have made are deleted by their UUIDs (rowUUIDs): an
// AddPort whose caller gave up before the reply (ovsdb-server stopped, say)
// is still carried out once the server reads it, since the server never
// learns the caller gave up, and the cache shows it only then. Requests on
// one connection are carried out in order, so this delete, sent after,
// removes what that insert makes; with nothing of the name it changes no
// row, and ovsdb-server commits nothing.
func (c *Client) deletePortOps(ctx context.Context, br *vswitch.Bridge, found bool, name string) ([]ovsdb.Operation, error) {
	port := &vswitch.Port{Name: name}
	ok, err := c.get(ctx, port)
	if err != nil || !ok && !found {
		return nil, err
	}
	if !ok {
		ifaceUUID, portUUID := rowUUIDs(name)
		port.UUID, port.Interfaces = portUUID, []string{ifaceUUID}
		return c.removePortOps(br, port)
	}
	if !owned(port.ExternalIDs) {
		return nil, ErrNotOwned
	}
	if name == br.Name {
		// Not a port of the caller's: a detach of a port refused for its
		// name (a tap port named after the bridge) leaves it alone.
		return nil, fmt.Errorf("%w: the bridge's own local port is EnsureBridge's to manage", ErrNotOwned)
	}
	if !found {
		return nil, errors.New("port is not on this bridge")
	}
	// br, read before the port, may not list a port that the same
	// transaction added: the cache takes an update in table by table (the
	// rollback of a stalled add meets this). A port that is on another
	// bridge is still refused, by ovsdb-server: a row that bridge refers
	// to cannot be deleted.
	return c.removePortOps(br, port)
}

// removePortOps take port off br and delete its rows and its interfaces'.
func (c *Client) removePortOps(br *vswitch.Bridge, port *vswitch.Port) ([]ovsdb.Operation, error) {
	ops, err := c.lc.Where(br).Mutate(br, model.Mutation{
		Field:   &br.Ports,
		Mutator: ovsdb.MutateOperationDelete,
		Value:   []string{port.UUID},
	})
	if err != nil {
		return nil, fmt.Errorf("build Bridge.ports mutation: %w", err)
	}
	del, err := c.lc.Where(&vswitch.Port{UUID: port.UUID}).Delete()
	if err != nil {
		return nil, fmt.Errorf("build port delete: %w", err)
	}
	ops = append(ops, del...)
	for _, id := range port.Interfaces {
		del, err := c.lc.Where(&vswitch.Interface{UUID: id}).Delete()
		if err != nil {
			return nil, fmt.Errorf("build interface delete: %w", err)
		}
		ops = append(ops, del...)
	}
	return ops, nil
}

// OwnedPorts lists, from the cache, the ports on the bridge that carry
// OwnerKey, sorted by name. The bridge's own local port is left out: it
// belongs to the bridge, not to the caller's set of ports.
func (c *Client) OwnedPorts(bridge string) ([]Port, error) {
	ctx, cancel, err := c.readContext()
	if err != nil {
		return nil, fmt.Errorf("list ports of bridge %q: %w", bridge, err)
	}
	defer cancel()
	out, err := c.ownedPorts(ctx, bridge)
	if err != nil {
		return nil, fmt.Errorf("list ports of bridge %q: %w", bridge, err)
	}
	return out, nil
}

func (c *Client) ownedPorts(ctx context.Context, bridge string) ([]Port, error) {
	var out []Port
	err := c.eachOwnedPort(ctx, bridge, func(port *vswitch.Port, iface *vswitch.Interface) {
		p := Port{Name: port.Name, ExternalIDs: maps.Clone(port.ExternalIDs)}
		if port.Tag != nil {
			p.Tag = *port.Tag
		}
		if iface != nil {
			p.Type = iface.Type
			if iface.Ofport != nil {
				p.Ofport = *iface.Ofport
			}
		}
		out = append(out, p)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Port) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// eachOwnedPort calls f, in the bridge's order, with every port on the
// bridge that carries OwnerKey, except the bridge's own local port, and with
// the port's first interface (nil when it has none or the cache lacks it).
func (c *Client) eachOwnedPort(ctx context.Context, bridge string, f func(*vswitch.Port, *vswitch.Interface)) error {
	br := &vswitch.Bridge{Name: bridge}
	found, err := c.get(ctx, br)
	if err != nil || !found {
		return errors.Join(err, errNotInCache(found))
	}
	for _, uuid := range br.Ports {
		port := &vswitch.Port{UUID: uuid}
		found, err := c.get(ctx, port)
		if err != nil {
			return fmt.Errorf("read port %s: %w", uuid, err)
		}
		if !found || !owned(port.ExternalIDs) || port.Name == bridge {
			continue
		}
		var iface *vswitch.Interface
		if len(port.Interfaces) > 0 {
			iface = &vswitch.Interface{UUID: port.Interfaces[0]}
			found, err := c.get(ctx, iface)
			if err != nil {
				return fmt.Errorf("read interface %s: %w", iface.UUID, err)
			}
			if !found {
				iface = nil
			}
		}
		f(port, iface)
	}
	return nil
}

// ownedBridge reads a bridge that must exist and be ours.
func (c *Client) ownedBridge(ctx context.Context, name string) (*vswitch.Bridge, error) {
	br := &vswitch.Bridge{Name: name}
	found, err := c.get(ctx, br)
	if err != nil || !found {
		return nil, fmt.Errorf("read bridge: %w", errors.Join(err, errNotInCache(found)))
	}
	if !owned(br.ExternalIDs) {
		return nil, fmt.Errorf("bridge: %w", ErrNotOwned)
	}
	return br, nil
}

func portMatches(p *vswitch.Port, spec PortSpec) bool {
	return derefTag(p.Tag) == spec.Tag && maps.Equal(p.ExternalIDs, ownedIDs(spec.ExternalIDs))
}

// interfaceMatches compares what a spec sets; an empty Options map equals
// the absent column (libovsdb reads an empty map back as nil or empty).
func interfaceMatches(i *vswitch.Interface, spec PortSpec) bool {
	return i.Type == spec.Type && maps.Equal(i.ExternalIDs, ownedIDs(spec.ExternalIDs)) && maps.Equal(i.Options, spec.Options)
}

// errNotInCache is nil when found, so callers can join it with a read error.
func errNotInCache(found bool) error {
	if found {
		return nil
	}
	return errors.New("not found")
}

func optTag(tag int) *int {
	if tag == 0 {
		return nil
	}
	return &tag
}

func derefTag(tag *int) int {
	if tag == nil {
		return 0
	}
	return *tag
}

package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

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
}

// Port is an owned port as the cache shows it.
type Port struct {
	Name        string
	Tag         int
	Ofport      int // 0 while ovs-vswitchd has not assigned one, -1 if it failed
	ExternalIDs map[string]string
}

// AddPort inserts Interface + Port and adds the port to the bridge in one
// transaction. If the port is already ours on that bridge it is updated in
// place (same rows, so its ofport stays); a port of that name that is not
// ours, or is on another bridge, is an error. Ports can only be added to a
// bridge we own. It returns once the cache shows the result.
func (c *Client) AddPort(ctx context.Context, bridge string, spec PortSpec) error {
	if err := c.addPort(ctx, bridge, spec); err != nil {
		return fmt.Errorf("add port %q to bridge %q: %w", spec.Name, bridge, err)
	}
	return nil
}

func (c *Client) addPort(ctx context.Context, bridge string, spec PortSpec) error {
	if spec.Name == "" {
		return errors.New("empty name")
	}
	if spec.Name == bridge {
		return errors.New("the bridge's own local port is EnsureBridge's to manage")
	}
	if spec.Tag < 0 || spec.Tag > 4095 {
		return fmt.Errorf("tag %d out of range 0-4095", spec.Tag)
	}
	br, err := c.ownedBridge(ctx, bridge)
	if err != nil {
		return err
	}
	port := &vswitch.Port{Name: spec.Name}
	found, err := c.get(ctx, port)
	if err != nil {
		return fmt.Errorf("read port: %w", err)
	}
	var ops []ovsdb.Operation
	if found {
		ops, err = c.updatePortOps(ctx, br, port, spec)
	} else {
		ops, err = c.insertPortOps(br, spec)
	}
	if err != nil || len(ops) == 0 {
		return err
	}
	if err := c.transact(ctx, ops); err != nil {
		return err
	}
	return c.waitCache(ctx, "port in cache", func() (bool, error) {
		br := &vswitch.Bridge{Name: bridge}
		port := &vswitch.Port{Name: spec.Name}
		for _, m := range []model.Model{br, port} {
			if found, err := c.get(ctx, m); err != nil || !found {
				return false, err
			}
		}
		if !slices.Contains(br.Ports, port.UUID) || !portMatches(port, spec) || len(port.Interfaces) != 1 {
			return false, nil
		}
		iface := &vswitch.Interface{UUID: port.Interfaces[0]}
		found, err := c.get(ctx, iface)
		return found && interfaceMatches(iface, spec), err
	})
}

func (c *Client) insertPortOps(br *vswitch.Bridge, spec PortSpec) ([]ovsdb.Operation, error) {
	iface := &vswitch.Interface{UUID: "iface", Name: spec.Name, Type: spec.Type, ExternalIDs: ownedIDs(spec.ExternalIDs)}
	port := &vswitch.Port{UUID: "port", Name: spec.Name, Interfaces: []string{iface.UUID}, Tag: optTag(spec.Tag), ExternalIDs: ownedIDs(spec.ExternalIDs)}
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
		upd := &vswitch.Interface{UUID: iface.UUID, Type: spec.Type, ExternalIDs: ownedIDs(spec.ExternalIDs)}
		op, err := c.lc.Where(upd).Update(upd, &upd.Type, &upd.ExternalIDs)
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

// DeletePort removes the Port and its Interface from the bridge in one
// transaction. A missing port is success; a port that is not ours is
// ErrNotOwned. It returns once the port is gone from the cache.
func (c *Client) DeletePort(ctx context.Context, bridge, name string) error {
	if err := c.deletePort(ctx, bridge, name); err != nil {
		return fmt.Errorf("delete port %q from bridge %q: %w", name, bridge, err)
	}
	return nil
}

func (c *Client) deletePort(ctx context.Context, bridge, name string) error {
	port := &vswitch.Port{Name: name}
	found, err := c.get(ctx, port)
	if err != nil || !found {
		return err
	}
	if !owned(port.ExternalIDs) {
		return ErrNotOwned
	}
	if name == bridge {
		return errors.New("the bridge's own local port is EnsureBridge's to manage")
	}
	br := &vswitch.Bridge{Name: bridge}
	found, err = c.get(ctx, br)
	if err != nil {
		return fmt.Errorf("read bridge: %w", err)
	}
	if !found || !slices.Contains(br.Ports, port.UUID) {
		return errors.New("port is not on this bridge")
	}
	ops, err := c.lc.Where(br).Mutate(br, model.Mutation{
		Field:   &br.Ports,
		Mutator: ovsdb.MutateOperationDelete,
		Value:   []string{port.UUID},
	})
	if err != nil {
		return fmt.Errorf("build Bridge.ports mutation: %w", err)
	}
	del, err := c.lc.Where(&vswitch.Port{UUID: port.UUID}).Delete()
	if err != nil {
		return fmt.Errorf("build port delete: %w", err)
	}
	ops = append(ops, del...)
	for _, uuid := range port.Interfaces {
		del, err := c.lc.Where(&vswitch.Interface{UUID: uuid}).Delete()
		if err != nil {
			return fmt.Errorf("build interface delete: %w", err)
		}
		ops = append(ops, del...)
	}
	if err := c.transact(ctx, ops); err != nil {
		return err
	}
	return c.waitCache(ctx, "port gone from cache", func() (bool, error) {
		found, err := c.get(ctx, &vswitch.Port{Name: name})
		return !found, err
	})
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
		if iface != nil && iface.Ofport != nil {
			p.Ofport = *iface.Ofport
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

func interfaceMatches(i *vswitch.Interface, spec PortSpec) bool {
	return i.Type == spec.Type && maps.Equal(i.ExternalIDs, ownedIDs(spec.ExternalIDs))
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

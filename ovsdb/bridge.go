package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// BridgeSpec is the desired state of a bridge.
type BridgeSpec struct {
	Name         string
	DatapathType string   // "netdev", "system" or "" (OVS default)
	FailMode     string   // "secure", "standalone" or "" (OVS default)
	Protocols    []string // e.g. {"OpenFlow10","OpenFlow13"}; empty = OVS default
	Controllers  []string // targets like "tcp:127.0.0.1:6653"; empty = no controller rows
	// OtherConfig keys to set (e.g. hwaddr); keys not named are left alone.
	OtherConfig map[string]string
}

// EnsureBridge creates the bridge (with its internal port/interface of the
// same name, as ovs-vsctl add-br does) or updates an existing one to match
// spec, in one transaction. An existing bridge without our OwnerKey is
// ErrNotOwned. Controller rows are created owned and replaced only when the
// set of targets changes, so an unchanged spec does not make ovs-vswitchd
// drop its controller connections. It returns once the cache shows the
// result.
func (c *Client) EnsureBridge(ctx context.Context, spec BridgeSpec) error {
	if spec.Name == "" {
		return fmt.Errorf("ensure bridge: empty name")
	}
	if err := c.ensureBridge(ctx, spec); err != nil {
		return fmt.Errorf("ensure bridge %q: %w", spec.Name, err)
	}
	return nil
}

// DatapathID waits until ovs-vswitchd has given the bridge its datapath id —
// the id the bridge's OpenFlow sessions announce — and returns it.
func (c *Client) DatapathID(ctx context.Context, bridge string) (uint64, error) {
	var dpid uint64
	err := c.waitCache(ctx, "datapath id", func() (bool, error) {
		br := &vswitch.Bridge{Name: bridge}
		found, err := c.get(ctx, br)
		if err != nil || !found || br.DatapathID == nil {
			return false, err
		}
		dpid, err = strconv.ParseUint(*br.DatapathID, 16, 64)
		return err == nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("bridge %q: %w", bridge, err)
	}
	return dpid, nil
}

func (c *Client) ensureBridge(ctx context.Context, spec BridgeSpec) error {
	br := &vswitch.Bridge{Name: spec.Name}
	found, err := c.get(ctx, br)
	if err != nil {
		return fmt.Errorf("read bridge: %w", err)
	}
	var ops []ovsdb.Operation
	if !found {
		ops, err = c.createBridgeOps(ctx, spec)
	} else {
		if !owned(br.ExternalIDs) {
			return ErrNotOwned
		}
		var ok bool
		if ok, err = c.bridgeMatches(ctx, br, spec); err != nil || ok {
			return err
		}
		ops, err = c.updateBridgeOps(ctx, br, spec)
	}
	if err != nil {
		return err
	}
	if err := c.transact(ctx, ops); err != nil {
		return err
	}
	return c.waitCache(ctx, "bridge in cache", func() (bool, error) {
		cur := &vswitch.Bridge{Name: spec.Name}
		found, err := c.get(ctx, cur)
		if err != nil || !found {
			return false, err
		}
		return c.bridgeMatches(ctx, cur, spec)
	})
}

func (c *Client) createBridgeOps(ctx context.Context, spec BridgeSpec) ([]ovsdb.Operation, error) {
	root, err := c.root(ctx)
	if err != nil {
		return nil, err
	}
	iface := &vswitch.Interface{UUID: "iface", Name: spec.Name, Type: "internal", ExternalIDs: ownedIDs(nil)}
	port := &vswitch.Port{UUID: "port", Name: spec.Name, Interfaces: []string{iface.UUID}, ExternalIDs: ownedIDs(nil)}
	ctlOps, ctlUUIDs, err := c.controllerOps(spec.Controllers)
	if err != nil {
		return nil, err
	}
	br := &vswitch.Bridge{
		UUID:         "bridge",
		Name:         spec.Name,
		Ports:        []string{port.UUID},
		Controller:   ctlUUIDs,
		DatapathType: spec.DatapathType,
		FailMode:     optString(spec.FailMode),
		Protocols:    spec.Protocols,
		OtherConfig:  spec.OtherConfig,
		ExternalIDs:  ownedIDs(nil),
	}
	ops, err := c.lc.Create(iface, port, br)
	if err != nil {
		return nil, fmt.Errorf("build insert: %w", err)
	}
	ops = append(ops, ctlOps...)
	mut, err := c.lc.Where(root).Mutate(root, model.Mutation{
		Field:   &root.Bridges,
		Mutator: ovsdb.MutateOperationInsert,
		Value:   []string{br.UUID},
	})
	if err != nil {
		return nil, fmt.Errorf("build Open_vSwitch.bridges mutation: %w", err)
	}
	return append(ops, mut...), nil
}

func (c *Client) updateBridgeOps(ctx context.Context, cur *vswitch.Bridge, spec BridgeSpec) ([]ovsdb.Operation, error) {
	br := &vswitch.Bridge{
		UUID:         cur.UUID,
		DatapathType: spec.DatapathType,
		FailMode:     optString(spec.FailMode),
		Protocols:    spec.Protocols,
		OtherConfig:  maps.Clone(cur.OtherConfig),
	}
	if br.OtherConfig == nil {
		br.OtherConfig = map[string]string{}
	}
	maps.Copy(br.OtherConfig, spec.OtherConfig)
	fields := []any{&br.DatapathType, &br.FailMode, &br.Protocols, &br.OtherConfig}
	var ops []ovsdb.Operation
	targets, err := c.controllerTargets(ctx, cur)
	if err != nil {
		return nil, err
	}
	if !sameSet(targets, spec.Controllers) {
		// The old rows are unreferenced afterwards and ovsdb-server
		// garbage-collects them (Controller is not a root table).
		ops, br.Controller, err = c.controllerOps(spec.Controllers)
		if err != nil {
			return nil, err
		}
		fields = append(fields, &br.Controller)
	}
	upd, err := c.lc.Where(br).Update(br, fields...)
	if err != nil {
		return nil, fmt.Errorf("build bridge update: %w", err)
	}
	return append(ops, upd...), nil
}

// controllerMaxBackoffMs is the longest wait between the bridge's attempts to
// reach its controller (OVS's minimum).
const controllerMaxBackoffMs = 1000

// controllerOps inserts one owned Controller row per distinct target and
// returns the named UUIDs to reference them by.
func (c *Client) controllerOps(targets []string) ([]ovsdb.Operation, []string, error) {
	var ops []ovsdb.Operation
	var uuids []string
	for i, t := range uniqueSorted(targets) {
		// The controller is a local daemon: after it restarts the bridge
		// should be back within a second, not after OVS's default 8 s backoff.
		maxBackoff := controllerMaxBackoffMs
		// Out of band: the controller is reached through the host's own
		// stack, and in-band control would add hidden flows to the bridge
		// and look for a route to it through the bridge every second.
		mode := vswitch.ControllerConnectionModeOutOfBand
		ctl := &vswitch.Controller{UUID: fmt.Sprintf("controller%d", i), Target: t, ExternalIDs: ownedIDs(nil),
			MaxBackoff: &maxBackoff, ConnectionMode: &mode}
		op, err := c.lc.Create(ctl)
		if err != nil {
			return nil, nil, fmt.Errorf("build controller insert %q: %w", t, err)
		}
		ops = append(ops, op...)
		uuids = append(uuids, ctl.UUID)
	}
	return ops, uuids, nil
}

// bridgeMatches reports whether the cached bridge already is what spec asks
// for. A controller row not yet in the cache counts as a mismatch.
func (c *Client) bridgeMatches(ctx context.Context, br *vswitch.Bridge, spec BridgeSpec) (bool, error) {
	if br.DatapathType != spec.DatapathType || derefString(br.FailMode) != spec.FailMode ||
		!sameSet(br.Protocols, spec.Protocols) {
		return false, nil
	}
	for k, v := range spec.OtherConfig {
		if br.OtherConfig[k] != v {
			return false, nil
		}
	}
	targets, err := c.controllerTargets(ctx, br)
	if err != nil {
		return false, err
	}
	return sameSet(targets, spec.Controllers), nil
}

// controllerTargets resolves the bridge's controller references; a reference
// whose row is not (yet) in the cache, or is not out of band (made by an
// older version), yields an empty target, so the rows are made anew.
func (c *Client) controllerTargets(ctx context.Context, br *vswitch.Bridge) ([]string, error) {
	targets := make([]string, 0, len(br.Controller))
	for _, uuid := range br.Controller {
		ctl := &vswitch.Controller{UUID: uuid}
		if _, err := c.get(ctx, ctl); err != nil {
			return nil, fmt.Errorf("read controller %s: %w", uuid, err)
		}
		if ctl.ConnectionMode == nil || *ctl.ConnectionMode != vswitch.ControllerConnectionModeOutOfBand {
			ctl.Target = ""
		}
		targets = append(targets, ctl.Target)
	}
	return targets, nil
}

func owned(ids map[string]string) bool { return ids[OwnerKey] == OwnerValue }

// ownedIDs returns a copy of ids with our owner mark.
func ownedIDs(ids map[string]string) map[string]string {
	out := maps.Clone(ids)
	if out == nil {
		out = make(map[string]string, 1)
	}
	out[OwnerKey] = OwnerValue
	return out
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func uniqueSorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func sameSet(a, b []string) bool { return slices.Equal(uniqueSorted(a), uniqueSorted(b)) }

// Package ovs is the Open vSwitch backend: every port's host link becomes a port
// of one integration bridge, configured through OVSDB.
//
// Until the OpenFlow pipeline lands, isolation is by VLAN: each network's ports
// are access ports tagged with the network's ID, and the bridge forwards with the
// NORMAL action (fail_mode standalone, no controller).
package ovs

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/model"
	"github.com/ovs-vnet/ovs-vnet/ovsdb"
)

// External IDs on our OVS ports, so that ovs-vsctl shows whose port it is.
const (
	portKey    = "ovs-vnet-port"
	networkKey = "ovs-vnet-network"
	maxVLAN    = 4094
)

// Backend implements datapath.Backend on an OVS integration bridge.
type Backend struct {
	db           *ovsdb.Client
	bridge       string
	datapathType string
	linkOpts     link.Options
}

// DatapathType resolves "auto": the kernel datapath when the openvswitch module
// is loaded, else the userspace one.
func DatapathType(flag string) string {
	if flag != "auto" {
		return flag
	}
	if _, err := os.Stat("/sys/module/openvswitch"); err == nil {
		return "system"
	}
	return "netdev"
}

// New makes sure the integration bridge exists as configured and returns the
// backend. It takes ownership of db.
func New(ctx context.Context, db *ovsdb.Client, bridge, datapathType string) (*Backend, error) {
	spec := ovsdb.BridgeSpec{
		Name:         bridge,
		DatapathType: datapathType,
		FailMode:     "standalone",
		Protocols:    []string{"OpenFlow10", "OpenFlow13"},
	}
	if err := db.EnsureBridge(ctx, spec); err != nil {
		return nil, fmt.Errorf("integration bridge %s: %w", bridge, err)
	}
	other, err := db.OtherConfig()
	if err != nil {
		return nil, fmt.Errorf("read Open_vSwitch other_config: %w", err)
	}
	// The userspace datapath without userspace TSO cannot take packets whose
	// checksum the sender left to offload (DESIGN.md §6).
	opts := link.Options{TxChecksumOff: datapathType == "netdev" && other["userspace-tso-enable"] != "true"}
	return &Backend{db: db, bridge: bridge, datapathType: datapathType, linkOpts: opts}, nil
}

// Info implements datapath.Backend.
func (b *Backend) Info() datapath.Info {
	return datapath.Info{Backend: "ovs", Bridge: b.bridge, DatapathType: b.datapathType}
}

// Ready implements datapath.Backend.
func (b *Backend) Ready() error {
	if !b.db.Connected() {
		return fmt.Errorf("not connected to OVSDB")
	}
	return nil
}

// Close implements datapath.Backend.
func (b *Backend) Close() error {
	b.db.Close()
	return nil
}

// EnsureNetwork implements datapath.Backend. A network is only a VLAN tag on the
// bridge, so there is nothing to create, but the tag must fit.
func (b *Backend) EnsureNetwork(_ context.Context, n model.Network) error {
	if n.ID < 1 || n.ID > maxVLAN {
		return fmt.Errorf("network %s: id %d does not fit a VLAN tag (1-%d)", n.Name, n.ID, maxVLAN)
	}
	return nil
}

// DeleteNetwork implements datapath.Backend.
func (b *Backend) DeleteNetwork(context.Context, model.Network) error { return nil }

// AttachPort implements datapath.Backend: host link first, then the OVS port in
// one transaction, then wait for vswitchd to give it an ofport — only then does
// the port forward.
func (b *Backend) AttachPort(ctx context.Context, n model.Network, p model.Port) (model.Port, error) {
	if _, err := link.EnsurePort(n, p, b.linkOpts); err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	spec := ovsdb.PortSpec{
		Name:        p.HostIfname,
		Tag:         n.ID,
		ExternalIDs: map[string]string{portKey: p.Name, networkKey: n.Name},
	}
	if err := b.db.AddPort(ctx, b.bridge, spec); err != nil {
		if errors.Is(err, ovsdb.ErrNotOwned) {
			err = fmt.Errorf("%w: %w", datapath.ErrConflict, err)
		}
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	ofport, err := b.db.WaitOfport(ctx, p.HostIfname)
	if err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	p.Ofport = ofport
	return p, nil
}

// DetachPort implements datapath.Backend.
func (b *Backend) DetachPort(ctx context.Context, _ model.Network, p model.Port) error {
	if err := b.db.DeletePort(ctx, b.bridge, p.HostIfname); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	if err := link.Delete(p.HostIfname, datapath.PortAlias(p.Name)); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	return nil
}

// Prune implements datapath.Backend: owned OVS ports and owned host links that no
// desired port names are removed.
func (b *Backend) Prune(ctx context.Context, _ []model.Network, ports []model.Port) error {
	want := map[string]string{} // host link name → alias
	for _, p := range ports {
		want[p.HostIfname] = datapath.PortAlias(p.Name)
	}
	owned, err := b.db.OwnedPorts(b.bridge)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	for _, op := range owned {
		if want[op.Name] == datapath.PortAlias(op.ExternalIDs[portKey]) {
			continue
		}
		if err := b.db.DeletePort(ctx, b.bridge, op.Name); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
	}
	return link.Prune(want)
}

// Package ovs is the Open vSwitch backend: every port's host link becomes a port
// of one integration bridge, configured through OVSDB, and the daemon is the
// bridge's OpenFlow controller (fail_mode secure: OVS forwards only by the
// flows we install, and keeps them while we restart).
//
// Until the OpenFlow pipeline lands, isolation is by VLAN: each network's ports
// are access ports tagged with the network's ID, and our one flow forwards with
// the NORMAL action.
package ovs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/flows/reconcile"
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
	dpid         uint64
	flows        *reconcile.Manager
	stopOpenFlow context.CancelFunc
}

// cookieSpace holds the cookie of every flow ovs-vnet installs: 'v' in the
// top byte. Flows with other cookies belong to someone else.
var cookieSpace = reconcile.CookieSpace{Value: 0x76 << 56, Mask: 0xff << 56}

// normalFlow forwards everything by MAC learning within the port's VLAN.
var normalFlow = reconcile.Flow{
	Table: 0, Priority: 0, Cookie: cookieSpace.Value,
	Instructions: []openflow.Instruction{openflow.ApplyActions{Actions: []openflow.Action{
		openflow.ActionOutput{Port: openflow.PortNormal},
	}}},
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

// Config is what the OVS backend needs besides its OVSDB client.
type Config struct {
	Bridge         string
	DatapathType   string // system or netdev
	OpenFlowListen string // the controller address the bridge connects to
	FlowMetrics    *reconcile.Metrics
	Log            *slog.Logger
}

// New makes sure the integration bridge exists as configured, with the daemon
// as its controller, and returns once the bridge's flows are in place. It
// takes ownership of db.
func New(ctx context.Context, db *ovsdb.Client, cfg Config) (*Backend, error) {
	other, err := db.OtherConfig()
	if err != nil {
		return nil, fmt.Errorf("read Open_vSwitch other_config: %w", err)
	}
	// The listener is up before the bridge learns of it, so the bridge's
	// first attempt to connect succeeds.
	ln, err := ofconn.Listen(cfg.OpenFlowListen)
	if err != nil {
		return nil, err
	}
	spec := ovsdb.BridgeSpec{
		Name:         cfg.Bridge,
		DatapathType: cfg.DatapathType,
		FailMode:     "secure",
		Protocols:    []string{"OpenFlow13"},
		Controllers:  []string{cfg.OpenFlowListen},
	}
	if err := db.EnsureBridge(ctx, spec); err != nil {
		ln.Close()
		return nil, fmt.Errorf("integration bridge %s: %w", cfg.Bridge, err)
	}
	dpid, err := db.DatapathID(ctx, cfg.Bridge)
	if err != nil {
		ln.Close()
		return nil, err
	}
	b := &Backend{
		db: db, bridge: cfg.Bridge, datapathType: cfg.DatapathType, dpid: dpid,
		// The userspace datapath without userspace TSO cannot take packets whose
		// checksum the sender left to offload (DESIGN.md §6).
		linkOpts: link.Options{TxChecksumOff: cfg.DatapathType == "netdev" && other["userspace-tso-enable"] != "true"},
	}
	b.flows = reconcile.NewManager(cookieSpace, b.desiredFlows, cfg.FlowMetrics, cfg.Log.With("component", "openflow"))
	serveCtx, stop := context.WithCancel(context.Background())
	b.stopOpenFlow = stop
	go func() {
		if err := ofconn.Serve(serveCtx, ln, ofconn.Options{Log: cfg.Log}, b.flows.Handle); err != nil {
			cfg.Log.Error("openflow listener failed", "err", err)
		}
	}()
	if err := b.waitFlows(ctx); err != nil {
		stop()
		b.flows.Close()
		return nil, fmt.Errorf("integration bridge %s (datapath %016x): %w", cfg.Bridge, dpid, err)
	}
	return b, nil
}

// desiredFlows is the flow table of each bridge that connects to us: only our
// integration bridge gets flows.
func (b *Backend) desiredFlows(dpid uint64) []reconcile.Flow {
	if dpid != b.dpid {
		return nil
	}
	return []reconcile.Flow{normalFlow}
}

func (b *Backend) waitFlows(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !b.flows.Synced(b.dpid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bridge did not connect to the controller and take its flows: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
	return nil
}

// Info implements datapath.Backend.
func (b *Backend) Info() datapath.Info {
	return datapath.Info{Backend: "ovs", Bridge: b.bridge, DatapathType: b.datapathType, OpenFlowConnected: b.flows.Synced(b.dpid)}
}

// Ready implements datapath.Backend.
func (b *Backend) Ready() error {
	if !b.db.Connected() {
		return fmt.Errorf("not connected to OVSDB")
	}
	if !b.flows.Synced(b.dpid) {
		return fmt.Errorf("bridge %s is not connected to the OpenFlow controller", b.bridge)
	}
	return nil
}

// Close implements datapath.Backend. The flows stay on the bridge (fail_mode
// secure), so ports keep forwarding.
func (b *Backend) Close() error {
	b.stopOpenFlow()
	b.flows.Close()
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
func (b *Backend) Prune(ctx context.Context, s datapath.State) error {
	want := link.PortLinks(s.Ports)
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

// EnsureRouter implements datapath.Backend.
func (b *Backend) EnsureRouter(context.Context, model.Router) error {
	return fmt.Errorf("routers are not implemented on this backend yet")
}

// DeleteRouter implements datapath.Backend.
func (b *Backend) DeleteRouter(context.Context, model.Router) error { return nil }

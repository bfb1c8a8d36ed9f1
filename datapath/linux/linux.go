// Package linux is the fallback backend: a Linux bridge per network, veth pairs
// into namespaces and tap devices enslaved to it, the gateway address on the
// bridge, routing between the networks of a router by the host, and isolation,
// masquerade and anti-spoofing by nftables rules in tables of our own (`inet
// ovs_vnet` for networks and routers, see Ruleset; `bridge ovs_vnet` for ports,
// see PortRules; `inet ovs_vnet_sg` for security groups, see policy_nft.go;
// `ip ovs_vnet_nat` for floating IPs and port forwards, see nat.go).
// Nothing outside those tables and our own links is touched.
//
// Given a datapath.Underlay the backend is one host of a cluster: each
// network's bridge also holds a VXLAN device to the other hosts, and the
// remote ports are written into its FDB and the bridge's neighbours (see
// overlay.go, remote.go, overlay_nft.go).
//
// Every call acts on the network namespace of the calling OS thread: the
// daemon's own, or a test's "host" namespace when run on a locked thread
// switched into it.
package linux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Backend implements datapath.Backend with Linux bridges.
type Backend struct {
	prefix string
	// underlay is nil on a single host.
	underlay *datapath.Underlay

	log *slog.Logger
	// links follows the host's links for the ports' checks (check.go).
	links *link.Watcher

	// The overlay (cluster mode), guarded by mu. remote is what the
	// overlay holds, by network: what the controller last asked for
	// (remotePorts, given by SetRemotePorts and Prune) less the ports left
	// out (skipped, see desiredOverlay); nil until it first says, and until
	// then what a previous run left in the kernel stands. remoteApplied:
	// the kernel was given remote, successfully, and nothing failed since.
	// local are this host's ports by network, which win over remote ports
	// with their MAC or address.
	remote        map[string]*overlayEntries
	remotePorts   []model.RemotePort
	remoteApplied bool
	local         map[string]map[string]model.Port
	skipped       datapath.SkipLog
	// underlayMTU warns of networks too large for the underlay.
	underlayMTU datapath.UnderlayMTU

	// mu serialises network and router changes so the inet table always
	// matches the networks and routers that exist.
	mu       sync.Mutex
	networks map[string]model.Network
	routers  map[string]model.Router
	// inherited: the inet table was there when we started, written by a
	// previous run. Until the first Prune we know only part of the desired
	// state, and that table, complete, stays in force.
	inherited bool

	// portsMu lets attaches and detaches run side by side (each is one nft
	// transaction of its own) but not while Prune lists and edits the
	// bridge table.
	portsMu sync.RWMutex

	// Until the first Prune, a port whose rules a previous run left in the
	// bridge table keeps them, and Prune rewrites all ports' rules in one
	// transaction: one nft run at start instead of one per port. leftRules
	// is that table, read at the first attach.
	startMu   sync.Mutex
	primed    bool
	leftRules *bridgeTable

	// sg enforces the security groups (policy.go).
	sg policyState
	// nat enforces floating IPs and port forwards (nat.go); mu guards it.
	nat natState
	// proc is where /proc is (bridgenf.go). noPolicy is why the backend
	// does not offer security groups, found at New: bridged traffic
	// skips the hooks its table is on.
	proc     string
	noPolicy string
	// dhcp answers the ports' DHCP (dhcp.go).
	dhcp *dhcpServer
}

// New returns a backend naming its bridges prefix-<hash>. It checks that nft
// is usable: without it networks would be neither isolated nor protected from
// spoofing.
//
// underlay nil is a single host; VXLAN devices a previous run in a cluster
// left go at the first Prune. Otherwise the host is one of a cluster, its
// networks carried to the other hosts by VXLAN from underlay.LocalIP (Kind
// "vxlan" or empty; Geneve is refused, see checkUnderlay).
func New(ctx context.Context, prefix string, underlay *datapath.Underlay, opts ...Option) (*Backend, error) {
	if err := checkUnderlay(prefix, underlay); err != nil {
		return nil, err
	}
	var u *datapath.Underlay
	if underlay != nil {
		u = &datapath.Underlay{LocalIP: underlay.LocalIP.Unmap(), Kind: datapath.TunnelVXLAN}
	}
	if err := hostnet.ApplyNft(ctx, "list tables\n"); err != nil {
		return nil, fmt.Errorf("linux backend needs nftables: %w", err)
	}
	if u != nil {
		if err := checkLocalAddr(u.LocalIP); err != nil {
			return nil, err
		}
	}
	_, err := hostnet.ListNft(ctx, "table", "inet", hostnet.Table)
	if err != nil && !errors.Is(err, hostnet.ErrNotExist) {
		return nil, fmt.Errorf("linux backend: %w", err)
	}
	b := &Backend{prefix: prefix, underlay: u, log: slog.Default(), networks: map[string]model.Network{}, routers: map[string]model.Router{},
		inherited: err == nil, local: map[string]map[string]model.Port{}, proc: "/proc"}
	for _, o := range opts {
		o(b)
	}
	if err := bridgeNetfilter(b.proc); err != nil {
		b.noPolicy = err.Error() + ", then restart the daemon"
		b.log.Warn("security groups not offered", "why", b.noPolicy)
	}
	if b.dhcp, err = newDHCPServer(b.log, func(network string) string { return bridgeMAC(network, u) }); err != nil {
		return nil, err
	}
	if b.links, err = link.Watch(b.log); err != nil {
		return nil, err
	}
	return b, nil
}

// Option changes a default of New.
type Option func(*Backend)

// WithLog makes the backend log to l rather than slog.Default().
func WithLog(l *slog.Logger) Option {
	return func(b *Backend) { b.log = l }
}

// Info implements datapath.Backend.
func (b *Backend) Info() datapath.Info {
	return datapath.Info{Backend: "linux", Bridge: b.prefix, NoDHCP: b.dhcp.off}
}

// Capabilities implements datapath.Backend: no OpenFlow, no OVSDB; security
// groups only if bridged traffic met the inet hooks at New.
func (b *Backend) Capabilities() datapath.Capabilities {
	c := datapath.Capabilities{PortChecker: b, HostChecker: b, Overlay: b, Tracer: b, Policy: b, NAT: b, DHCP: b}
	if b.noPolicy != "" {
		c.Policy, c.NoPolicy = nil, b.noPolicy
	}
	return c
}

// Ready implements datapath.Backend: netlink is always there.
func (b *Backend) Ready() error { return nil }

// Close implements datapath.Backend.
func (b *Backend) Close() error {
	b.links.Close()
	b.dhcp.closeAll()
	return nil
}

// Held implements datapath.Backend: the ports' host links and the networks'
// bridges in this namespace, by their aliases.
func (b *Backend) Held(context.Context) (datapath.Held, error) {
	ports, networks, err := link.Held()
	if err != nil {
		return datapath.Held{}, fmt.Errorf("held objects: %w", err)
	}
	return datapath.Held{Ports: ports, Networks: networks}, nil
}

func (b *Backend) bridgeName(network string) string { return model.BridgeName(b.prefix, network) }

func (b *Backend) vxlanName(network string) string { return VXLANName(b.prefix, network) }

// HostConflict implements datapath.HostChecker: every network has a host
// side here, its gateway address on its bridge, and with it a route.
func (b *Backend) HostConflict(n model.Network) (string, error) {
	return hostnet.SubnetConflict(n.Subnet, datapath.OwnerAlias)
}

// EnsureNetwork implements datapath.Backend. In a cluster the network's
// VXLAN device joins the bridge after the rules that keep the gateway's ARP
// off the overlay are in place, and gets the network's remote ports.
func (b *Backend) EnsureNetwork(ctx context.Context, n model.Network) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.underlay != nil {
		if err := checkVNI(n); err != nil {
			return err
		}
	}
	name := b.bridgeName(n.Name)
	br, err := link.Lookup(name, datapath.BridgeAlias(n.Name))
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if br == nil {
		if br, err = createBridge(name, n); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	if err := configureBridge(br, n, bridgeMAC(n.Name, b.underlay)); err != nil {
		return fmt.Errorf("network %s: bridge %s: %w", n.Name, name, err)
	}
	b.networks[n.Name] = n
	b.dhcp.setNetwork(n)
	var overlay string
	if b.underlay != nil {
		overlay = OverlayNetwork(b.prefix, n)
	}
	if err := b.syncRules(ctx, overlay); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if b.underlay == nil {
		return nil
	}
	if err := ensureVXLAN(b.underlay, b.vxlanName(n.Name), br, n); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	ifname, mtu, err := link.Holding(b.underlay.LocalIP)
	b.underlayMTU.Check(b.log, n, b.underlay.LocalIP, ifname, mtu, err)
	// A device just made (or re-made) has an empty FDB; one that was there
	// is checked too, cheaply, so a restart repairs what went missing.
	if err := b.syncOverlay(ctx, n.Name); err != nil {
		b.remoteApplied = false
		return fmt.Errorf("network %s: remote ports: %w", n.Name, err)
	}
	return nil
}

func createBridge(name string, n model.Network) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = n.MTU
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	l, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetAlias(l, datapath.BridgeAlias(n.Name))
	}
	if err != nil {
		_ = netlink.LinkDel(br)
		return nil, fmt.Errorf("set up bridge %s: %w", name, err)
	}
	return l, nil
}

// configureBridge makes a bridge, new or adopted, what the network wants,
// sealed (link.SealGateway) before it is up: networks are IPv4 only, the
// bridge holds only the gateway, and the host answers ARP there for the
// gateway alone.
func configureBridge(br netlink.Link, n model.Network, bridgeMAC string) error {
	if err := link.SealGateway(br.Attrs().Name); err != nil {
		return err
	}
	mac, _ := net.ParseMAC(bridgeMAC)
	if br.Attrs().HardwareAddr.String() != mac.String() {
		if err := netlink.LinkSetHardwareAddr(br, mac); err != nil {
			return fmt.Errorf("set mac: %w", err)
		}
	}
	if br.Attrs().MTU != n.MTU {
		if err := netlink.LinkSetMTU(br, n.MTU); err != nil {
			return fmt.Errorf("set mtu: %w", err)
		}
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
	if err := netlink.AddrReplace(br, gw); err != nil {
		return fmt.Errorf("add gateway address %s: %w", gw.IPNet, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

// DeleteNetwork implements datapath.Backend.
func (b *Backend) DeleteNetwork(ctx context.Context, n model.Network) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.underlay != nil {
		// The VXLAN device first: with its bridge gone first it would be,
		// for a moment, a free interface handing the other hosts' frames
		// of the network to the host's own stack.
		if err := link.Delete(b.vxlanName(n.Name), VXLANAlias(n.Name)); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	if err := link.Delete(b.bridgeName(n.Name), datapath.BridgeAlias(n.Name)); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	delete(b.networks, n.Name)
	b.dhcp.deleteNetwork(n.Name)
	b.underlayMTU.Forget(n.Name)
	var overlay string
	if b.underlay != nil && len(b.networks) > 0 {
		overlay = OverlayNetworkDelete(b.prefix, n)
	}
	if err := b.syncRules(ctx, overlay); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if len(b.networks) == 0 {
		// No network, so no port: the bridge table goes too, as Prune
		// would remove it; the next attach brings it back.
		b.portsMu.Lock()
		defer b.portsMu.Unlock()
		if err := hostnet.ApplyNft(ctx, PruneScript(bridgeTable{}, nil, 0)); err != nil {
			return fmt.Errorf("network %s: remove the port rules table: %w", n.Name, err)
		}
	}
	return nil
}

// syncRules re-renders the inet table from the networks and routers we hold,
// with extra (bridge table commands) in the same transaction; b.mu is held.
func (b *Backend) syncRules(ctx context.Context, extra string) error { return b.sync(ctx, true, extra) }

// sync re-renders the inet table when inet is set, and the NAT table when
// it no longer holds what the NAT and the networks make, in one
// transaction with extra; b.mu is held. Forwarding goes on before the
// rules that rely on it.
//
// Before the first Prune a table inherited from a previous run is left alone:
// rendering the part of the state ensured so far would cut the routes of
// networks not yet ensured for the length of the restart. On a fresh host
// there is no such table, and rules are written at once.
func (b *Backend) sync(ctx context.Context, inet bool, extra string) error {
	networks := slices.Collect(maps.Values(b.networks))
	routers := slices.Collect(maps.Values(b.routers))
	if routing(networks, routers, b.nat.want) {
		if err := hostnet.EnableForwarding(); err != nil {
			return err
		}
	}
	script := extra
	if inet && !b.inherited {
		script = Ruleset(b.prefix, networks, routers, b.nat.want) + extra
	}
	nat, held, err := b.natScript(ctx)
	if err != nil {
		return fmt.Errorf("nat rules: %w", err)
	}
	if script+nat == "" {
		b.natApplied(ctx, held)
		return nil
	}
	b.nat.held = nil // unknown until the change is through
	if err := hostnet.ApplyNft(ctx, script+nat); err != nil {
		return fmt.Errorf("network rules: %w", err)
	}
	b.natApplied(ctx, held)
	return nil
}

// EnsureRouter implements datapath.Backend: the host routes between the
// router's networks once the inet table lets it.
func (b *Backend) EnsureRouter(ctx context.Context, r model.Router) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.routers[r.Name] = r
	if err := b.syncRules(ctx, ""); err != nil {
		return fmt.Errorf("router %s: %w", r.Name, err)
	}
	return nil
}

// DeleteRouter implements datapath.Backend. IPv4 forwarding stays on (see
// hostnet.EnableForwarding); the forward chain now drops what the router let
// through.
func (b *Backend) DeleteRouter(ctx context.Context, r model.Router) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.routers, r.Name)
	if err := b.syncRules(ctx, ""); err != nil {
		return fmt.Errorf("router %s: %w", r.Name, err)
	}
	return nil
}

// Package ovs is the Open vSwitch backend: every port's host link becomes a port
// of one integration bridge, configured through OVSDB, and the daemon is the
// bridge's OpenFlow controller (fail_mode secure: OVS forwards only by the
// flows we install, and keeps them while we restart). The flows come from
// flows/pipeline; this package keeps the model they are compiled from and
// sends each change as the difference it makes.
package ovs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/flows/reconcile"
	"github.com/ovs-vnet/ovs-vnet/internal/fault"
	"github.com/ovs-vnet/ovs-vnet/model"
	"github.com/ovs-vnet/ovs-vnet/ovsdb"
)

// hostSyncTimeout bounds one sync of the host's routes and nftables table.
const hostSyncTimeout = 30 * time.Second

// External IDs on our OVS ports, so that ovs-vsctl shows whose port it is.
const (
	portKey    = "ovs-vnet-port"
	networkKey = "ovs-vnet-network"
)

// Backend implements datapath.Backend on an OVS integration bridge.
type Backend struct {
	db           *ovsdb.Client
	bridge       string
	datapathType string
	linkOpts     link.Options
	dpid         uint64
	pipeline     pipeline.Pipeline
	flows        *reconcile.Manager
	stopOpenFlow context.CancelFunc
	vswitchdCtl  string
	spares       *spares
	// links follows the host's links for the ports' checks (repair.go).
	links *link.Watcher
	log   *slog.Logger
	// lock keeps other daemons off the bridge (ovsdb.BridgeLock).
	lock *ovsdb.BridgeLock
	// underlay is the cluster's underlay as this host sees it (kind
	// defaulted); nil on a single host.
	underlay *datapath.Underlay
	// remoteMu serialises SetRemotePorts (see there) and guards
	// remoteGiven, the list the state's remote ports came from (nil
	// before the first).
	remoteMu    sync.Mutex
	remoteGiven *[]model.RemotePort
	// policyMu serialises SetPolicy, which diffs the policy it is given
	// against the state's before it changes the state.
	policyMu sync.Mutex
	// natHost is the host's NAT table (nat.go); nil: no NAT. natMu
	// serialises SetNAT, as policyMu SetPolicy.
	natHost *NATHost
	natMu   sync.Mutex
	// natStale is the NAT the host's rules held before a SetNAT whose
	// host step failed after its flows went in, nil when the last one
	// went through: the next SetNAT syncs the host even for an equal NAT,
	// and forgets the connections from there. Guarded by natMu.
	natStale *model.NAT
	// skipped is what was logged of the remote ports that get no flows
	// (datapath.SelectRemote). Guarded by mu.
	skipped datapath.SkipLog
	// underlayMTU warns of networks too large for the underlay; it has a
	// lock of its own.
	underlayMTU datapath.UnderlayMTU

	// mu guards the state the flows are compiled from. The controller
	// makes one change at a time; the lock is for the OpenFlow side, which
	// compiles the whole state when the bridge (re)connects.
	mu    sync.Mutex
	state state
	// dropReasons names each drop flow's reason, for the exporter.
	dropReasons *dropReasonTable
	// pmtu counts the ICMP sent for path_mtu's packet-ins (pmtu.go).
	pmtu pathMTU
	// dhcp counts what came of the DHCP the daemon was sent (dhcp.go).
	dhcp dhcp.Counters
	// declines are the DECLINEs worth a warning.
	declines dhcp.Declines
	// dhcpHost bounds the DHCP of all ports together (its host bucket;
	// each port's own bound is its meter on the switch).
	dhcpHost *dhcp.Limiter
	// dumpMu guards dump, the flow dump under way that concurrent stats
	// calls share.
	dumpMu sync.Mutex
	dump   *flowDump

	// hostMu serialises syncs of the host side, which the controller and a
	// reconnecting bridge may ask for at once; each applies the state as it
	// is when it holds the lock.
	hostMu sync.Mutex
	// primed: the state is complete (the first Prune has run). Until then
	// a connecting bridge keeps the flows it has, which still forward.
	primed bool
	// natHash and natCounters are what the host's NAT table holds: the
	// hash it was rendered with ("" without a table) and its counters.
	// Guarded by hostMu.
	natHash     string
	natCounters []string
	// pickup is the pickup window's clock (pickup.go). Guarded by mu.
	pickup pickupClock
}

// cookieSpace holds the cookie of every flow ovs-vnet installs: 'v' in the
// top byte; our groups carry it in their IDs. Flows with other cookies belong
// to someone else.
var cookieSpace = flowset.CookieSpace{Value: 0x76 << 56, Mask: 0xff << 56}

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
	// OpenFlowCert, OpenFlowKey and OpenFlowCA are the PEM files of an
	// ssl: OpenFlowListen (see ofconn.TLSFiles): ours, and what the switch
	// presents and checks unless its SSL row is someone else's (see
	// ovsdb.Client.EnsureSSL).
	OpenFlowCert, OpenFlowKey, OpenFlowCA string
	// VswitchdCtl is ovs-vswitchd's control socket, for the datapath
	// statistics; "" finds it anew on each read with FindVswitchdCtl from
	// the OVSDB endpoint (which must then be unix:PATH).
	VswitchdCtl string
	// SparePorts is how many veth pairs wait on the bridge for ports to
	// claim them (see spares); 0 attaches every port the slow way.
	SparePorts int
	// Underlay makes this host one of a cluster: the bridge gets a
	// flow-based tunnel port (see overlay.go) and the backend forwards to
	// the remote ports SetRemotePorts gives it. nil: a single host.
	Underlay *datapath.Underlay
	// Registerer takes the OpenFlow controller's series
	// (reconcile.NewMetrics); a backend made again on it counts on in them.
	// Required.
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// Owner describes this daemon (pid, host, namespace, state): the
	// bridge's ownership record, which a daemon refused the bridge's lock
	// reads to say who holds it.
	Owner string
	// Lost is told, once, when the bridge's lock is no longer this
	// daemon's (ovsdb.LockOptions): the daemon must stop driving the
	// bridge. It must not block.
	Lost func(error)
	// NAT reads the host's NAT table and its connections; nil: the
	// backend enforces no floating IPs and port forwards (no
	// Capabilities.NAT) and leaves the table alone.
	NAT *NATHost
	// PickupWindow is how long the pickup window stays open (pickup.go);
	// 0 is pickupWindow.
	PickupWindow time.Duration
}

// New makes sure the integration bridge exists as configured, with the daemon
// as its controller, and returns without waiting for the bridge to connect:
// after a restart ovs-vswitchd retries on its own clock, up to a second
// later, and the reconcile's attaches need no OpenFlow session. The
// bridge's flows are left as they are until the first Prune, which waits
// for the session, when the model is complete. It takes ownership of db.
func New(ctx context.Context, db *ovsdb.Client, cfg Config) (_ *Backend, err error) {
	underlay, err := checkUnderlay(cfg.Underlay)
	if err != nil {
		return nil, err
	}
	// The bridge's lock before anything is changed: another daemon's
	// bridge is not ours to configure, nor its ports to prune.
	lock, err := ovsdb.LockBridge(ctx, db.Endpoint(), cfg.Bridge, ovsdb.LockOptions{Log: cfg.Log, Lost: func(err error) {
		if cfg.Lost != nil {
			cfg.Lost(fmt.Errorf("%w; stopping, not to drive the bridge beside its new holder (%w)", err, datapath.ErrTaken))
		}
	}})
	if errors.Is(err, ovsdb.ErrBridgeLocked) {
		owner := db.BridgeOwner(cfg.Bridge)
		if owner == "" {
			owner = "it left no record"
		}
		return nil, fmt.Errorf("bridge %s is %w (%s): one daemon per bridge", cfg.Bridge, datapath.ErrTaken, owner)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	other, err := db.OtherConfig()
	if err != nil {
		return nil, fmt.Errorf("read Open_vSwitch other_config: %w", err)
	}
	// The listener is up before the bridge learns of it, so the bridge's
	// first attempt to connect succeeds.
	ln, err := listenOpenFlow(ctx, db, cfg)
	if err != nil {
		return nil, err
	}
	hostMAC, _ := net.ParseMAC(model.HostMAC(cfg.Bridge))
	spec := ovsdb.BridgeSpec{
		Name:         cfg.Bridge,
		DatapathType: cfg.DatapathType,
		FailMode:     "secure",
		Protocols:    []string{"OpenFlow13"},
		Controllers:  []string{cfg.OpenFlowListen},
		OtherConfig:  map[string]string{"hwaddr": hostMAC.String()},
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
	if err := db.SetBridgeOwner(ctx, cfg.Bridge, cfg.Owner); err != nil {
		ln.Close()
		return nil, err
	}
	if err := hostnet.ApplyNft(ctx, HostEndsGuard()); err != nil {
		ln.Close()
		return nil, fmt.Errorf("guard the ports' links: %w", err)
	}
	b := &Backend{
		db: db, bridge: cfg.Bridge, datapathType: cfg.DatapathType, dpid: dpid,
		// The userspace datapath without userspace TSO cannot take packets whose
		// checksum the sender left to offload (docs/DESIGN.md §6); with it, OVS 3.1
		// cannot tunnel them ("Tunneling packets with HW offload flags is not
		// supported: packet dropped"), so TCP to other hosts would stall.
		linkOpts: link.Options{TxChecksumOff: cfg.DatapathType == "netdev" &&
			(other["userspace-tso-enable"] != "true" || underlay != nil)},
		underlay:    underlay,
		pipeline:    pipeline.Pipeline{Space: cookieSpace, HostMAC: hostMAC},
		state:       newState(),
		dropReasons: newDropReasonTable(),
		dhcpHost:    dhcp.NewLimiter(dhcp.PortRate, dhcp.PortBurst, dhcp.HostRate, dhcp.HostBurst),
		vswitchdCtl: cfg.VswitchdCtl,
		spares:      newSpares(db, cfg.Bridge, cfg.SparePorts, cfg.Log.With("component", "spares")),
		log:         cfg.Log,
		lock:        lock,
		natHost:     cfg.NAT,
		pickup:      pickupClock{length: cmp.Or(cfg.PickupWindow, pickupWindow)},
	}
	if err := b.spares.load(); err != nil {
		ln.Close()
		return nil, err
	}
	// Before the first Prune compiles anything: the flows use its ofport.
	tunnel, err := b.ensureTunnel(ctx)
	if err != nil {
		ln.Close()
		return nil, err
	}
	b.pipeline.Tunnel = tunnel
	if b.links, err = link.Watch(cfg.Log); err != nil {
		ln.Close()
		return nil, err
	}
	db.OnInterfaceChange(b.links.Signal)
	b.flows = reconcile.NewManager(cookieSpace, (*flowSource)(b), reconcile.NewMetrics(cfg.Registerer), cfg.Log.With("component", "openflow"))
	serveCtx, stop := context.WithCancel(context.Background())
	b.stopOpenFlow = stop
	go func() {
		if err := ofconn.Serve(serveCtx, ln, ofconn.Options{Log: cfg.Log}, b.serveSession); err != nil {
			cfg.Log.Error("openflow listener failed", "err", err)
		}
	}()
	return b, nil
}

// listenOpenFlow opens the controller's listener. For an ssl: target it
// also gives ovs-vswitchd its side of the TLS session first (the SSL row),
// unless the operator already set one.
func listenOpenFlow(ctx context.Context, db *ovsdb.Client, cfg Config) (net.Listener, error) {
	if !ofconn.IsTLS(cfg.OpenFlowListen) {
		return ofconn.Listen(cfg.OpenFlowListen)
	}
	f := ofconn.TLSFiles{Cert: cfg.OpenFlowCert, Key: cfg.OpenFlowKey, CA: cfg.OpenFlowCA}
	conf, err := f.ServerConfig()
	if err != nil {
		return nil, err
	}
	foreign, err := db.EnsureSSL(ctx, ovsdb.SSLSpec{PrivateKey: f.Key, Certificate: f.Cert, CACert: f.CA})
	if err != nil {
		return nil, err
	}
	if foreign {
		cfg.Log.Info("OVS SSL row set by someone else: left as it is; its certificate must be signed by --openflow-ca and its ca_cert must trust ours")
	}
	return ofconn.ListenTLS(cfg.OpenFlowListen, conf)
}

// flowSource is the backend as the OpenFlow side sees it.
type flowSource Backend

// Desired is the flow table of each bridge that connects to us: only our
// integration bridge's is known, and only once the state is complete.
func (f *flowSource) Desired(dpid uint64) (flowset.Desired, bool) {
	b := (*Backend)(f)
	if dpid != b.dpid {
		return flowset.Desired{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.primed {
		return flowset.Desired{}, false
	}
	d, err := b.pipeline.Compile(b.state.model(b.self()))
	if err != nil {
		// The state is checked as it is built; this is a bug, and syncing a
		// partial table would cut traffic.
		b.log.Error("compile the pipeline", "err", err)
		return flowset.Desired{}, false
	}
	return d, true
}

// Synced restores the host side after the bridge (re)connected: a restarted
// ovs-vswitchd makes the bridge's interface anew, without our routes, and
// forgets its fragment reassembly settings.
func (f *flowSource) Synced(dpid uint64) {
	b := (*Backend)(f)
	ctx, cancel := context.WithTimeout(context.Background(), hostSyncTimeout)
	defer cancel()
	if err := b.syncHost(ctx); err != nil {
		b.log.Error("restore the host side of masquerade", "err", err)
	}
	if err := b.ensureFragMin(ctx); err != nil {
		b.log.Error("set up the datapath for security groups", "err", err)
	}
}

// connectTimeout bounds the wait for the bridge's OpenFlow session.
const connectTimeout = 30 * time.Second

func (b *Backend) waitConnected(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !b.flows.Connected(b.dpid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("integration bridge %s (datapath %016x) did not connect to the controller: %w", b.bridge, b.dpid, context.Cause(ctx))
		case <-t.C:
		}
	}
	return nil
}

// Info implements datapath.Backend.
func (b *Backend) Info() datapath.Info {
	return datapath.Info{Backend: "ovs", Bridge: b.bridge, DatapathType: b.datapathType, OpenFlowConnected: b.flows.Synced(b.dpid)}
}

// Capabilities implements datapath.Backend: all of them, NAT when the
// backend has the host's NAT table.
func (b *Backend) Capabilities() datapath.Capabilities {
	c := datapath.Capabilities{
		PortChecker: b, HostChecker: b, Overlay: b, Tracer: b, FlowLister: b, SwitchStats: b, Policy: b, DHCP: b,
		OVSDBConnected: b.db.Connected,
	}
	if b.natHost != nil {
		c.NAT = b
	}
	return c
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
	b.stopPickup()
	b.spares.close()
	b.links.Close()
	b.stopOpenFlow()
	b.flows.Close()
	b.lock.Close()
	b.db.Close()
	return nil
}

// AttachPort implements datapath.Backend. A veth port claims a spare when
// there is one; otherwise, and for taps: host link first (made again if it
// went), then the OVS port in one transaction (first taken off the bridge
// if ovs-vswitchd holds an earlier device of its name: rebindSpec), then
// wait for vswitchd to give it an ofport, then the port's flows — only
// then does the port forward.
func (b *Backend) AttachPort(ctx context.Context, n model.Network, p model.Port) (model.Port, error) {
	if p.Type == v1.PortVeth {
		if sp, ok := b.spares.take(p); ok {
			return b.attachSpare(ctx, n, p, sp)
		}
	}
	if err := b.adoptable(ctx, p); err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	spec, rebound, err := b.rebindSpec(ctx, n, p)
	if err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	host, err := link.EnsurePort(ctx, n, p, b.linkOpts)
	if err == nil && !rebound {
		// EnsurePort makes a veth whose namespace end is gone anew.
		spec, rebound, err = b.rebindSpec(ctx, n, p)
	}
	if err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	if err := b.db.AddPort(ctx, b.bridge, spec); err != nil {
		if errors.Is(err, ovsdb.ErrNotOwned) {
			err = fmt.Errorf("%w: %w", datapath.ErrConflict, err)
		}
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	fault.Point("attach-after-ovs-port")
	ofport, err := b.db.WaitOfport(ctx, p.HostIfname)
	if err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	fault.Point("attach-after-ofport")
	if rebound {
		// Up again, should the port's delete have set it down (see rebindSpec).
		if err := netlink.LinkSetUp(host); err != nil {
			return p, fmt.Errorf("port %s: set %s up: %w", p.Name, p.HostIfname, err)
		}
	}
	p.Ofport = ofport
	if err := b.putPort(ctx, p); err != nil {
		return p, fmt.Errorf("port %s: flows: %w", p.Name, err)
	}
	fault.Point("attach-after-flows")
	return p, nil
}

func (b *Backend) portSpec(n model.Network, p model.Port) ovsdb.PortSpec {
	return ovsdb.PortSpec{
		Name:        p.HostIfname,
		ExternalIDs: map[string]string{portKey: p.Name, networkKey: n.Name},
	}
}

// DetachPort implements datapath.Backend: the port's flows go first, so
// none is left pointing at a port that is gone.
func (b *Backend) DetachPort(ctx context.Context, _ model.Network, p model.Port) error {
	if name := b.spares.claimedBy(p); name != "" {
		p.HostIfname = name
	}
	if err := b.removePort(ctx, p.Name); err != nil {
		return fmt.Errorf("port %s: flows: %w", p.Name, err)
	}
	fault.Point("detach-after-flows-removed")
	// An OVS port of that name that is not ours (an attach was refused for
	// it) is left alone: nothing of the port's is there to delete.
	if err := b.db.DeletePort(ctx, b.bridge, p.HostIfname); err != nil && !errors.Is(err, ovsdb.ErrNotOwned) {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	fault.Point("detach-after-ovs-port-removed")
	var err error
	if link.IsSpare(p.HostIfname) {
		// A spare whose claim failed early may still carry the spare's tag.
		err = link.DeleteSpare(p.HostIfname, p.Name)
	} else {
		err = link.DeletePort(p)
	}
	if err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	b.spares.forget(p)
	fault.Point("detach-after-link-removed")
	return nil
}

// Prune implements datapath.Backend: owned OVS ports and owned host links that
// no desired port names are removed (the tunnel port too, on a single host);
// then the model is complete, with s's remote ports, and the bridge's flows,
// the host side and the model are made to agree in full.
func (b *Backend) Prune(ctx context.Context, s datapath.State) error {
	remote := byNetwork(s.Remote)
	if b.underlay == nil && len(s.Remote) > 0 {
		b.log.Warn("remote ports given to a single host are ignored: no underlay configured", "remote_ports", len(s.Remote))
		remote = nil
	}
	want := link.PortLinks(s.Ports)
	b.spares.want(want)
	owned, err := b.db.OwnedPorts(b.bridge)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	for _, op := range owned {
		// A spare's OVS port keeps its spare label until the claim is
		// written; the link's alias says whose it is.
		port, _, ok := datapath.AliasPort(want[op.Name])
		if ok && port == op.ExternalIDs[portKey] || op.ExternalIDs[spareKey] != "" && want[op.Name] != "" ||
			op.Name == tunnelPort && b.underlay != nil {
			continue
		}
		if err := b.db.DeletePort(ctx, b.bridge, op.Name); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
	}
	if err := link.Prune(want); err != nil {
		return err
	}
	names := map[string]bool{}
	for _, p := range s.Ports {
		names[p.Name] = true
	}
	b.spares.retain(names)
	// Again, in case the port went (a foreign ovs-vsctl del-port) or its
	// ofport changed; the full sync below follows it.
	tunnel, err := b.ensureTunnel(ctx)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	b.setTunnel(tunnel)
	// Not between a SetRemotePorts' look at the state and its change.
	b.remoteMu.Lock()
	b.prime(s, remote)
	b.mu.Lock()
	logged := slices.Concat(slices.Collect(maps.Keys(remote)), b.skipped.Networks())
	b.mu.Unlock()
	b.reportSkips(logged...)
	b.setGiven(s.Remote)
	b.remoteMu.Unlock()
	if err := b.loadNAT(ctx); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if err := b.syncHost(ctx); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if err := b.waitConnected(ctx); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if err := b.flows.Sync(b.dpid); err != nil {
		return fmt.Errorf("prune: sync flows: %w", err)
	}
	// Logged, not failed: without it only fragments in networks of small
	// MTU miss the security groups' conntrack, and a daemon that cannot
	// reach ovs-vswitchd's control socket (a TCP OVSDB endpoint without
	// --vswitchd-ctl) runs as before.
	if err := b.ensureFragMin(ctx); err != nil {
		b.log.Error("set up the datapath for security groups", "err", err)
	}
	return b.spares.setActive(ctx, len(s.Networks) > 0)
}

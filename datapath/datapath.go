// Package datapath defines what a backend does to make the desired state real on
// the host: networks, and ports attached to them. The OVS and Linux backends
// implement it; the controller drives it.
package datapath

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

var (
	// ErrConflict means something on the host that is not ours stands in the way
	// (an interface of the same name in the namespace, a foreign bridge).
	ErrConflict = errors.New("conflict")
	// ErrNoNetns means the port's network namespace does not exist.
	ErrNoNetns = errors.New("network namespace does not exist")
	// ErrTaken means another ovs-vnet daemon owns what the backend was
	// to use (an OVS bridge); waiting does not make it ours.
	ErrTaken = errors.New("taken by another ovs-vnet daemon")
	// ErrUnsupported means the backend cannot do what was asked on this
	// host as it is set up (security groups on Linux without
	// br_netfilter); controller.ErrUnsupported is this one.
	ErrUnsupported = errors.New("not supported")
)

// Why a port that was attached does not forward now (PortChecker). Each is
// a reason the API and the metrics name (see PortFaultReason).
var (
	// ErrLinkGone: the port's host link (veth host end, tap) or, for a
	// veth, its namespace end is missing or is not ours.
	ErrLinkGone = errors.New("link gone")
	// ErrNotBound: the switch does not carry the port's host link (OVS:
	// no ofport, an interface error, or bound to a device that has been
	// deleted; Linux: not enslaved to the network's bridge).
	ErrNotBound = errors.New("not bound to the datapath")
)

// PortChecker is a backend that can tell whether an attached port still
// forwards, and signals when something it made for a port may have changed
// under the daemon (a link deleted by hand, a namespace deleted or re-made,
// an interface ovs-vswitchd lost). The controller checks the ports on each
// signal and repairs a broken one with AttachPort, which must make
// CheckPort return nil when it succeeds.
type PortChecker interface {
	// Changed is signalled, coalesced, when a port's links or the
	// switch's interfaces may have changed. It is never closed.
	Changed() <-chan struct{}
	// CheckPort tells why p, as attached, does not forward now: an error
	// wrapping ErrLinkGone, ErrNoNetns or ErrNotBound, with the detail.
	// It looks as far as depth says, changes nothing and is bounded by ctx.
	CheckPort(ctx context.Context, n model.Network, p model.Port, depth CheckDepth) error
}

// CheckDepth says how far a PortChecker looks.
type CheckDepth int

const (
	// CheckHost looks at what the host shows of a port — its host link,
	// the switch — from state the events Changed signals keep current:
	// cheap enough for every port on every signal, which a bulk attach
	// raises by the hundred. What it leaves out raises no such event: a
	// namespace that goes takes its veth's host end with it.
	CheckHost CheckDepth = iota
	// CheckAll also looks into a veth's namespace (an open per port):
	// for the periodic sweep, ports already down, and requests.
	CheckAll
)

// Ownership marks: the alias of every Linux link a backend creates starts with
// OwnerAlias, so that a restarted daemon can find — and only find — its own links.
const (
	OwnerAlias      = "ovs-vnet:"
	portAliasPfx    = OwnerAlias + "port="
	adoptedAliasPfx = OwnerAlias + "adopted:port="
	bridgeAliasPfx  = OwnerAlias + "network="
)

// PortAlias is the alias of a host link the daemon made for a port.
func PortAlias(port string) string { return portAliasPfx + port }

// AdoptedAlias is the alias of a tap a port adopted: a VM runtime's
// device, which whatever finds it with no port to match (a restart's
// Prune after a crash, --reset-dataplane) hands back — unbinds it and
// clears the alias — and never deletes, as the runtime's VM may hold it.
func AdoptedAlias(port string) string { return adoptedAliasPfx + port }

// HostAlias is the alias p's host link carries: AdoptedAlias for a tap p
// adopts, PortAlias otherwise.
func HostAlias(p model.Port) string {
	if p.Adopt {
		return AdoptedAlias(p.Name)
	}
	return PortAlias(p.Name)
}

// AliasPort names the port whose host link carries alias, of either form;
// adopted tells which. ok is false for any other alias.
func AliasPort(alias string) (port string, adopted, ok bool) {
	if port, ok = strings.CutPrefix(alias, portAliasPfx); ok {
		return port, false, true
	}
	port, ok = strings.CutPrefix(alias, adoptedAliasPfx)
	return port, ok, ok
}

// BridgeAlias is the alias of a network's Linux bridge.
func BridgeAlias(network string) string { return bridgeAliasPfx + network }

// Info describes a backend for GET /v1/info.
type Info struct {
	Backend      string // "ovs" or "linux"
	Bridge       string
	DatapathType string // OVS datapath type; empty on Linux
	// OpenFlowConnected: the bridge is connected to our controller and has
	// its flows (OVS only).
	OpenFlowConnected bool
	// NoDHCP says why the backend answers no port's DHCP although
	// networks ask for it, and how to change that; empty when it answers.
	NoDHCP string
}

// Backend realises networks and ports. Every method is idempotent: repeating a
// call that succeeded changes nothing, and Detach/DeleteNetwork of something
// already gone succeed, so the controller can retry and roll back freely.
type Backend interface {
	Info() Info
	// Capabilities reports what the backend can do beyond this interface.
	Capabilities() Capabilities
	// Ready reports why the backend cannot serve right now, or nil.
	Ready() error
	EnsureNetwork(ctx context.Context, n model.Network) error
	DeleteNetwork(ctx context.Context, n model.Network) error
	// AttachPort makes the port forward: host link up in the network, the
	// namespace end named, addressed and routed. It returns the port with the
	// datapath's results (ofport) filled in.
	AttachPort(ctx context.Context, n model.Network, p model.Port) (model.Port, error)
	DetachPort(ctx context.Context, n model.Network, p model.Port) error
	// EnsureRouter makes the router's networks route to each other, replacing
	// what an earlier EnsureRouter of the same name set up. Its networks have
	// been ensured.
	EnsureRouter(ctx context.Context, r model.Router) error
	DeleteRouter(ctx context.Context, r model.Router) error
	// Prune removes everything the backend owns that the desired state does not
	// name, and nothing else. It is called after every object of s has been
	// ensured or attached.
	Prune(ctx context.Context, s State) error
	// PortStats returns the counters of every attached port, as one
	// snapshot bounded by ctx (for the exporter).
	PortStats(ctx context.Context) ([]PortStats, error)
	// Held lists what of ovs-vnet's the datapath holds that belongs to a
	// network, router or port, as left by earlier runs; it is called
	// before the first Prune (see Held).
	Held(ctx context.Context) (Held, error)
	Close() error
}

// Held is what a datapath holds of ovs-vnet's that only a network, a router
// or a port makes: ports (OVS ports and host links), networks' Linux
// bridges, OpenFlow flows of networks, routes and ports. What exists with no
// object at all (spare ports, the base pipeline) is not in it, so that an
// empty state and a fresh datapath agree.
type Held struct {
	Ports    []string // port names, from their OVS ports and links
	Networks []string // network names, from their bridges
	Flows    int      // flows owned by a network, its routes or a port
}

// Empty tells that the datapath holds nothing that a Prune on an empty
// state would delete.
func (h Held) Empty() bool { return len(h.Ports) == 0 && len(h.Networks) == 0 && h.Flows == 0 }

func (h Held) String() string {
	var parts []string
	if len(h.Ports) > 0 {
		parts = append(parts, "ports "+some(h.Ports))
	}
	if len(h.Networks) > 0 {
		parts = append(parts, "network bridges "+some(h.Networks))
	}
	if h.Flows > 0 {
		parts = append(parts, fmt.Sprintf("%d flows of networks, routes or ports", h.Flows))
	}
	return strings.Join(parts, "; ")
}

// some names the first few of names: a message about a thousand ports
// stays one line.
func some(names []string) string {
	const shown = 5
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:shown], ", "), len(names)-shown)
}

// FlowLister is a backend whose datapath runs OpenFlow flows (OVS).
type FlowLister interface {
	Flows(ctx context.Context, s State) ([]v1.Flow, error)
}

// Tracer explains what a packet a port sends does in the datapath; s is the
// whole desired state, for naming the objects the packet meets.
type Tracer interface {
	Trace(ctx context.Context, s State, q v1.Query) (v1.Result, error)
}

// HostChecker is a backend that gives networks a host side (a route or an
// address on a host interface). HostConflict tells why a new network's host
// side would take traffic from the host's own addresses or routes
// (hostnet.SubnetConflict), or "". The controller asks before it records
// the network, and refuses it; networks already recorded are not asked
// about again, so that a later change of the host never stops a restart.
type HostChecker interface {
	HostConflict(n model.Network) (string, error)
}

// State is the whole desired state, as Prune sees it.
type State struct {
	Networks []model.Network
	Routers  []model.Router
	Ports    []model.Port // this host's
	// Remote are the other hosts' ports this host forwards to (cluster
	// mode; see Overlay).
	Remote []model.RemotePort
	// Policy is the security groups' policy (see PolicyEnforcer).
	Policy model.Policy
	// NAT is this host's floating IPs and port forwards (see NATEnforcer).
	NAT model.NAT
}

// Tunnel kinds of an Underlay.
const (
	TunnelVXLAN  = "vxlan"
	TunnelGeneve = "geneve"
)

// Underlay is how a host in a cluster reaches the other hosts: networks are
// carried between them in tunnels of Kind from LocalIP, one VNI per network
// (its ID). A backend given none is a single host.
type Underlay struct {
	LocalIP netip.Addr
	Kind    string // TunnelVXLAN or TunnelGeneve
}

// Overlay is a backend configured with an Underlay. The controller hands it
// the remote ports this host needs — those of the networks its own ports are
// in, and of the networks routed to those — from live hosts only; broadcast
// in a network goes to the hosts that have ports of it among them.
type Overlay interface {
	// SetRemotePorts replaces the set of remote ports, changing only what
	// differs.
	SetRemotePorts(ctx context.Context, ports []model.RemotePort) error
}

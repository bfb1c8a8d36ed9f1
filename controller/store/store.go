// Package store keeps the desired state — networks, routers, ports,
// security groups, floating IPs and port forwards — where
// it survives restarts: in an embedded bbolt file for a single host (Bolt), or
// in etcd for a cluster of hosts (Etcd). Networks, routers and addresses are
// the cluster's; each port belongs to one host.
//
// Every write is checked and applied in one transaction of the store, so that
// two writers — two requests, or two hosts — can never both succeed where only
// one may: one network per name and subnet, one port per name, per address and
// per MAC of a network.
package store

import (
	"context"
	"errors"
	"net/netip"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// Why a write was refused. Errors wrap one of them, with the details a client
// needs (which network overlaps, which port holds the address).
var (
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("conflict")
	ErrNotFound = errors.New("not found")
	// ErrUnavailable means the store could not be reached in time; nothing
	// was written (or, for a write whose outcome is unknown, the caller must
	// read it back).
	ErrUnavailable = errors.New("state store unavailable")
)

// State is everything a store holds.
type State struct {
	Networks []model.Network
	Routers  []model.Router
	Ports    []model.Port // of every host
	Hosts    []Host       // live hosts; none in a Bolt store
	// SecurityGroups are the cluster's, like networks.
	SecurityGroups []model.SecurityGroup
	// FloatingIPs and PortForwards are the cluster's; each names a port,
	// whose host enforces it.
	FloatingIPs  []model.FloatingIP
	PortForwards []model.PortForward
	// Revision is the store's revision this state was read at: a Watch
	// from Revision+1 misses nothing. Always 0 for Bolt.
	Revision int64
}

// Host is a live member of a cluster.
type Host struct {
	Name       string     `json:"name"`
	UnderlayIP netip.Addr `json:"underlay_ip"`
}

// Store is the desired-state database. It is safe for concurrent use.
//
// A refusal reads "<sentinel>: detail" (`conflict: address 10.1.0.5 is in
// use by port a`), ready for a client; any other failure is wrapped with the
// operation (`create port "a": ...`). Etcd bounds every call by its
// OpTimeout and fails with ErrUnavailable when etcd does not answer in time.
//
// The writes a cluster's host follows the store's changes against return
// rev, the store's revision their change committed at: the watch sends
// that change as an Event of that Revision, and a host that has applied
// its own write ignores the older changes of the object still on their
// way (controller/cluster.go). rev is 0 when nothing was written (the
// object was already as asked, or was missing for a delete), when the
// store cannot tell the revision (a retried write whose earlier try was
// applied after all), with an error, and always for Bolt, which has no
// watch.
type Store interface {
	Load(ctx context.Context) (State, error)
	// CreateNetwork stores a new network with an ID no other network has,
	// and returns it with that ID. ErrExists: a network of that name;
	// ErrConflict: its subnet overlaps another network's, or holds a
	// floating address or a forward's host_ip.
	CreateNetwork(ctx context.Context, n model.Network) (stored model.Network, rev int64, err error)
	// DeleteNetwork removes a network; ErrConflict while a port or a router
	// uses it. A missing network is not an error.
	DeleteNetwork(ctx context.Context, name string) (rev int64, err error)
	// UpdateNetwork replaces a stored network whose mutable fields alone
	// changed (model.Network.SameImmutable; its ID is the stored one's).
	// ErrNotFound if gone; ErrConflict if the update would change its ID
	// or an immutable field, as another host's delete and create of the
	// name meanwhile may have.
	UpdateNetwork(ctx context.Context, n model.Network) (rev int64, err error)
	// PutRouter creates or replaces a router and returns it with its ID: a
	// new router gets one no other router has, a replaced one keeps its own.
	// ErrNotFound when one of its networks does not exist.
	PutRouter(ctx context.Context, r model.Router) (stored model.Router, rev int64, err error)
	// DeleteRouter removes a router; a missing one is not an error.
	DeleteRouter(ctx context.Context, name string) (rev int64, err error)
	// CreatePort stores a new port and takes its address and its MAC in its
	// network. ErrExists: a port of that name; ErrConflict: the address
	// (also ErrAddressInUse) or the MAC (also ErrMACInUse) is taken;
	// ErrNotFound: its network or one of its security groups does not
	// exist. The MAC must be in canonical form (v1.ParseMAC).
	CreatePort(ctx context.Context, p model.Port) error
	// UpdatePort replaces a stored port of host p.Host whose name, network,
	// address and MAC stay the same (its host link, ofport or security
	// groups changed); ErrNotFound if gone or one of its security groups
	// does not exist, ErrConflict if the port is another host's or the
	// update would change its network, address or MAC. A record without a
	// host (stored before ports named their host) is any host's, and takes
	// p.Host.
	UpdatePort(ctx context.Context, p model.Port) error
	// DeletePort removes the port of host named name and frees its address
	// and its MAC; a missing one is not an error, another host's is
	// ErrConflict (a record without a host is any host's). It decides on
	// the record as it is when it deletes: a port deleted and created again
	// meanwhile by another host is that host's, and stays.
	//
	// The port's floating IPs and forwards go with it, in the same
	// transaction: a forward is a claim on a host port, which must not
	// outlive the workload that had it.
	DeletePort(ctx context.Context, name, host string) error
	// PutSecurityGroup creates or replaces a security group and returns it
	// with its ID — a new group gets the lowest no other group has, a
	// replaced one keeps its own — and the group it replaced, as it was
	// stored: the zero group (ID 0) when it created one. What was stored
	// is the store's to say, not a cache's: in a cluster another host may
	// have made the group a moment ago. ErrNotFound when a group its rules
	// name in remote_group does not exist (the group itself excepted).
	PutSecurityGroup(ctx context.Context, g model.SecurityGroup) (stored, was model.SecurityGroup, rev int64, err error)
	// DeleteSecurityGroup removes a security group; ErrConflict while a
	// port lists it or another group's rule names it. A missing group is
	// not an error.
	DeleteSecurityGroup(ctx context.Context, name string) (rev int64, err error)
	// PutFloatingIP creates or replaces a floating IP. ErrNotFound: its
	// port does not exist; ErrConflict: its address is in a network's
	// subnet, is another floating IP's or a forward's host_ip, or its port
	// has another floating IP.
	PutFloatingIP(ctx context.Context, f model.FloatingIP) (rev int64, err error)
	// DeleteFloatingIP removes a floating IP; a missing one is not an
	// error.
	DeleteFloatingIP(ctx context.Context, name string) (rev int64, err error)
	// PutPortForward creates or replaces a port forward. ErrNotFound: its
	// port does not exist; ErrConflict: it overlaps a forward of a port on
	// the same host (model.PortForward.Overlaps), or its host_ip is in a
	// network's subnet or is a floating address.
	PutPortForward(ctx context.Context, f model.PortForward) (rev int64, err error)
	// DeletePortForward removes a port forward; a missing one is not an
	// error.
	DeletePortForward(ctx context.Context, name string) (rev int64, err error)
	Close() error
}

// Cluster is a store shared by the hosts of a cluster (Etcd).
type Cluster interface {
	Store
	// Register makes h a live host until ctx ends: its record lives as
	// long as a lease the store keeps alive, and is written anew (new
	// lease) whenever the lease was lost, for example after the store was
	// unreachable for longer than the lease. It returns nil when ctx ends,
	// without revoking the lease: a restarting daemon's host stays live for
	// the others while its dataplane keeps forwarding (its next Register
	// moves the record to a new lease, so the old one expires harmlessly).
	//
	// It writes the record only where there is none or where it is h's
	// own, name and underlay address alike: another daemon's record of the
	// same name is not taken over, now or when registering again after a
	// loss. Register then returns an error that is ErrConflict (`conflict:
	// host "h1" is live with underlay 10.0.0.2 (...)`), as it does at once
	// for an invalid host. registered, unless nil, is called once, when the
	// record is first written: from then on the host is live.
	Register(ctx context.Context, h Host, registered func()) error
	// Watch sends every change from revision from on (State.Revision+1
	// after a Load; from <= 0: from now), in order, until ctx ends or the
	// store is closed, and then closes the channel. It rides out outages of
	// the store on its own, resuming after the last change it sent. When
	// the store can no longer replay the changes since then (they were
	// compacted away), it sends one Event with Reset set and closes the
	// channel: the receiver must Load again and Watch from that state.
	Watch(ctx context.Context, from int64) <-chan Event
}

// Kinds of object an Event is about.
const (
	KindNetwork = "network"
	KindRouter  = "router"
	KindPort    = "port"
	KindHost    = "host"

	KindSecurityGroup = "security_group"
	KindFloatingIP    = "floating_ip"
	KindPortForward   = "port_forward"
)

// Event is one change in a Cluster store. Exactly one of the object fields
// is set for a put; all are nil for a delete.
type Event struct {
	Kind     string
	Name     string
	Revision int64
	// Reset: the watch cannot go on (see Cluster.Watch); nothing else is
	// set but Revision, the store's oldest revision.
	Reset bool

	Network *model.Network
	Router  *model.Router
	Port    *model.Port
	Host    *Host

	SecurityGroup *model.SecurityGroup
	FloatingIP    *model.FloatingIP
	PortForward   *model.PortForward
}

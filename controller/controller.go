// Package controller owns the desired state: it validates requests, allocates
// addresses, keeps networks, routers and ports in the store, and drives a datapath
// backend to make them real — at request time, and in full when it (re)connects.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/datapath/nsfile"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// DatapathTimeout bounds the datapath work of one request (the HTTP layer
// gives each that long) and of one repair of a port (drift.go).
const DatapathTimeout = 60 * time.Second

// rollbackTimeout bounds the undo of a failed request, which must run even when
// the client has gone and cancelled the request's context.
const rollbackTimeout = 30 * time.Second

// Bounds of the start-up work: one attempt to open the backend, and one full
// reconcile (which attaches every stored port).
const (
	connectTimeout   = 30 * time.Second
	reconcileTimeout = 10 * time.Minute
)

// Connector opens the datapath backend; Run calls it until it succeeds.
type Connector func(ctx context.Context) (datapath.Backend, error)

// Controller keeps the store, the address pools and the host in agreement.
// Port attaches and detaches run side by side: each holds mu only to check
// and reserve (name, address, interface) and to record the outcome, not
// while the datapath works, which on a busy switch takes most of the time.
// Everything else changes under both locks, alone.
//
// Lock order: changing, then remoteMu, then policyMu, then natMu, then
// mu. A
// goroutine holding one of them takes only those after it, so none waits
// on another in a cycle.
type Controller struct {
	log     *slog.Logger
	store   store.Store
	metrics *metrics
	// host is this host's name: the ports it attaches are its own.
	host string
	// resetDataplane: an empty state wipes the datapath (WithResetDataplane).
	resetDataplane bool
	// netnsGrace: how long a ReleaseWithNetns port's namespace may be gone
	// before the port is released; 0 never (WithNetnsGrace, release.go).
	netnsGrace time.Duration
	// checkNetns vets a port's namespace before any lock is taken
	// (link.CheckNetns; the tests' fake backend has no namespaces).
	checkNetns func(context.Context, model.Port) (model.Port, error)
	// netnsID tells namespaces apart (nsfile.Identify; drift.go's
	// procNetns says why).
	netnsID func(context.Context, string) (nsfile.ID, error)
	// cluster is the store when it is shared by the hosts of a cluster; nil
	// for a single host. See cluster.go.
	cluster store.Cluster
	// remoteMu serialises the hand-over of the remote ports to the backend,
	// so that the last to hand over has computed from the latest state
	// (lock order: see Controller).
	remoteMu sync.Mutex
	// policyMu serialises the hand-over of the security groups' policy
	// by changes that hold changing shared (secgroups.go, syncPolicy; lock
	// order: see Controller).
	policyMu sync.Mutex
	// natMu serialises the hand-over of the floating IPs' and forwards'
	// NAT by changes that hold changing shared (nat.go, syncNAT; lock
	// order: see Controller).
	natMu sync.Mutex
	// localAddrs reads the host's own addresses (hostnet.LocalAddrs;
	// WithLocalAddrs in tests).
	localAddrs func() ([]netip.Addr, error)
	// broadcasts reads the host's directed broadcast addresses
	// (hostnet.Broadcasts; WithBroadcasts in tests).
	broadcasts func() ([]netip.Addr, error)
	// natLeft are the NAT objects this host cannot enforce, by "KIND
	// NAME", and why: each is logged once (nat.go, natLocked).
	natLeft map[string]string

	// changing is held shared by port attaches and detaches for their
	// whole run, and exclusively by every other change, the reconcile and
	// the shutdown, which so never meet a port change half done (lock
	// order: see Controller).
	changing sync.RWMutex
	mu       sync.Mutex
	// busy are the ports whose attach or detach is under way: their names,
	// addresses and interfaces are taken, and other changes of them refused.
	busy     map[string]model.Port
	backend  datapath.Backend // nil until Run has connected and reconciled
	notReady string           // why the controller does not serve yet
	// faults are this host's ports that do not forward, and why (drift.go).
	faults map[string]*portFault
	// repairs are the ports the watcher (or an identical PUT) is
	// attaching again, closed when done (drift.go).
	repairs map[string]chan struct{}
	// netnsIDs are the namespaces this host's ports with a /proc path were
	// last seen forwarding in (drift.go, procNetns).
	netnsIDs map[string]nsfile.ID
	cache
	// remoteDirty wakes the loop that hands over the remote ports
	// (cluster.go), policyDirty the one of the policy (secgroups.go),
	// natDirty the one of the NAT (nat.go).
	remoteDirty chan struct{}
	policyDirty chan struct{}
	natDirty    chan struct{}

	// published is what readers that must not wait for a change in progress
	// (readiness probes, metrics, the exporter) see: a copy made under mu
	// after every change.
	published atomic.Pointer[status]
}

// status is the controller as published for lock-free readers.
type status struct {
	backend                         datapath.Backend
	notReady                        string
	networks, routers, ports, hosts int
}

// publish makes the current state visible to lock-free readers; mu is held.
// Mutating methods defer it right after taking the lock, so it runs before
// the unlock whatever path they return by.
func (c *Controller) publish() {
	c.published.Store(&status{backend: c.backend, notReady: c.notReady,
		networks: len(c.networks), routers: len(c.routers), ports: len(c.ports), hosts: len(c.hosts)})
}

func (c *Controller) status() *status { return c.published.Load() }

// capabilities is what b can do beyond datapath.Backend: nothing while
// there is no backend (not ready, shut down).
func capabilities(b datapath.Backend) datapath.Capabilities {
	if b == nil {
		return datapath.Capabilities{}
	}
	return b.Capabilities()
}

// exclusive takes both locks, in the lock order (see Controller), for a
// change that no port change may overlap, and returns their release:
// `defer c.exclusive()()`.
func (c *Controller) exclusive() (unlock func()) {
	c.changing.Lock()
	c.mu.Lock()
	return func() {
		c.mu.Unlock()
		c.changing.Unlock()
	}
}

// loadTimeout bounds the first read of the desired state.
const loadTimeout = 30 * time.Second

// New makes the controller of host on the desired state in st. A single
// host's state is read at once, so that reads are served from the start; a
// cluster's is read by Run. Changes wait until Run has connected a backend.
func New(st store.Store, host string, log *slog.Logger, m *Metrics, opts ...Option) (*Controller, error) {
	c := &Controller{
		log:      log,
		store:    st,
		host:     host,
		metrics:  m.m,
		notReady: "connecting to the datapath",
		busy:     map[string]model.Port{},
		faults:   map[string]*portFault{},
		repairs:  map[string]chan struct{}{},
		netnsIDs: map[string]nsfile.ID{},

		checkNetns:  link.CheckNetns,
		netnsID:     nsfile.Identify,
		remoteDirty: make(chan struct{}, 1),
		policyDirty: make(chan struct{}, 1),
		natDirty:    make(chan struct{}, 1),
		localAddrs:  hostnet.LocalAddrs,
		broadcasts:  hostnet.Broadcasts,
	}
	for _, o := range opts {
		o(c)
	}
	c.cluster, _ = st.(store.Cluster)
	var seed uint64
	if c.cluster != nil {
		seed = allocationSeed(host)
	}
	c.cache = newCache(seed)
	if c.cluster == nil {
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		defer cancel()
		fresh, _, err := c.load(ctx)
		if err != nil {
			return nil, err
		}
		c.cache = fresh
	} else {
		c.notReady = "reading the desired state from the cluster store"
	}
	c.publish()
	m.observe(c)
	return c, nil
}

// Option changes a default of New.
type Option func(*Controller)

// WithResetDataplane lets the first reconcile delete what the datapath holds
// of ovs-vnet's when the state is empty, which it otherwise refuses (see
// ErrEmptyState).
func WithResetDataplane() Option {
	return func(c *Controller) { c.resetDataplane = true }
}

// WithNetnsCheck vets ports' namespaces with check instead of
// link.CheckNetns: for tests only, whose fake backend has no namespaces
// (controller/controllertest); the daemon never passes it.
func WithNetnsCheck(check func(context.Context, model.Port) (model.Port, error)) Option {
	return func(c *Controller) { c.checkNetns = check }
}

// ErrEmptyState is Run's refusal to start on a state store that holds no
// network while the datapath holds objects that only networks, routers and
// ports make: the reconcile would delete them all. Every change records an
// object in the store before it makes it on the datapath and unmakes it
// before it removes the record (networks.go, routers.go, ports.go), so a
// crash never leaves that combination; a lost or wrong store does (an
// unmounted volume, another state dir or etcd prefix). A network is the
// test: routers and ports cannot be stored without one; and in a cluster
// the networks are everyone's, while a gone host's ports may be deleted
// anywhere (cluster.go, deleteRemotePort), so a store with networks but
// none of this host's ports is normal there. A cluster emptied whole while
// this host was down looks like a wiped etcd, and is refused like one.
var ErrEmptyState = errors.New("the state store holds no network")

// Run connects the backend (retrying with backoff until ctx ends), reconciles
// the host with the desired state, and then serves until ctx ends, when it
// closes the backend. The dataplane is left as it is: ports keep forwarding
// while the daemon is down. In a cluster it first reads the desired state
// from the store, and then follows the store's changes (cluster.go).
func (c *Controller) Run(ctx context.Context, connect Connector) error {
	backoff := 500 * time.Millisecond
	var rev int64
	for {
		var err error
		rev, err = c.start(ctx, connect)
		if err == nil {
			break
		}
		if errors.Is(err, ErrEmptyState) || errors.Is(err, datapath.ErrTaken) {
			// Retrying would change neither the store's mind nor
			// the other daemon's; the operator must. (A holder about
			// to go, such as this daemon's previous run, has been
			// waited for already: ovsdb.LockBridge.)
			c.setNotReady(err.Error())
			return err
		}
		c.setNotReady(err.Error())
		c.log.Warn("not ready, retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	go c.loop(ctx, c.policyDirty, c.retryPolicy)
	go c.loop(ctx, c.natDirty, c.retryNAT)
	if c.cluster != nil {
		go c.follow(ctx, rev)
	}
	watched := c.watchPorts(ctx)
	<-ctx.Done()
	<-watched // no repair may meet the backend closed
	defer c.exclusive()()
	defer c.publish()
	err := c.backend.Close()
	c.backend, c.notReady = nil, "shutting down"
	return err
}

// start reads a cluster's desired state, then connects the backend and
// reconciles; it returns the store revision the state was read at.
func (c *Controller) start(ctx context.Context, connect Connector) (rev int64, err error) {
	if c.cluster != nil {
		lctx, cancel := context.WithTimeout(ctx, loadTimeout)
		defer cancel()
		var fresh cache
		if fresh, rev, err = c.load(lctx); err != nil {
			return 0, err
		}
		unlock := c.exclusive()
		c.cache = fresh
		c.publish()
		unlock()
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	b, err := connect(cctx)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	if err := c.checkNotEmpty(rctx, b); err != nil {
		b.Close()
		return 0, err
	}
	if err := c.reconcile(rctx, b); err != nil {
		b.Close()
		return 0, err
	}
	return rev, nil
}

func (c *Controller) setNotReady(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	c.notReady = reason
}

// reconcile makes the host match the desired state: every network, router and
// port is ensured (which leaves what is already right untouched), then whatever
// the backend owns beyond that is removed. Routers come after their networks, as
// EnsureRouter expects. The security groups' policy is handed over before the
// ports are attached, so that each port's rules come with its attach; the
// backend only records it until Prune, which enforces it whole. Prune
// enforces the NAT of the attached ports too (State.NAT).
func (c *Controller) reconcile(ctx context.Context, b datapath.Backend) error {
	start := time.Now()
	defer c.exclusive()()
	defer c.publish()
	for _, n := range c.networks {
		if err := b.EnsureNetwork(ctx, n); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
	}
	for _, r := range c.routers {
		if err := b.EnsureRouter(ctx, r); err != nil {
			return fmt.Errorf("reconcile: router %s: %w", r.Name, err)
		}
	}
	policy := c.policyLocked()
	if pe := capabilities(b).Policy; pe != nil {
		if err := pe.SetPolicy(ctx, policy); err != nil {
			return fmt.Errorf("reconcile: security groups: %w", err)
		}
	}
	broken, err := c.attachAll(ctx, b)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	addrs, err := c.localAddrs()
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	state := datapath.State{
		Networks: slices.Collect(maps.Values(c.networks)),
		Routers:  slices.Collect(maps.Values(c.routers)),
		Ports:    slices.Collect(maps.Values(c.ports)),
		Remote:   c.remotePorts(),
		Policy:   policy,
		NAT:      c.natLocked(addrs),
	}
	if err := b.Prune(ctx, state); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	c.metrics.remotePorts.Set(float64(len(state.Remote)))
	c.backend, c.notReady = b, ""
	c.metrics.reconcileDuration.Observe(time.Since(start).Seconds())
	c.log.Info("reconciled", "backend", b.Info().Backend, "networks", len(c.networks),
		"routers", len(c.routers), "ports", len(c.ports), "security_groups", len(c.groups),
		"ports_not_attached", broken, "took", time.Since(start))
	return nil
}

// checkNotEmpty refuses (ErrEmptyState) a state with no network while the
// datapath holds objects of networks, routers or ports, unless the
// operator asked for the reset. It runs before the first reconcile only:
// a resync in a cluster that finds no network follows deletes it missed,
// and no change runs before the first reconcile has set the backend.
func (c *Controller) checkNotEmpty(ctx context.Context, b datapath.Backend) error {
	c.mu.Lock()
	networks := len(c.networks)
	c.mu.Unlock()
	if networks > 0 {
		return nil
	}
	held, err := b.Held(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("reconcile: %w", err)
	case held.Empty():
		return nil
	case c.resetDataplane:
		c.log.Warn("the state is empty: deleting what the datapath holds, as asked", "held", held.String())
		return nil
	}
	return fmt.Errorf("%w, but the datapath holds %s", ErrEmptyState, held)
}

// reconcileWorkers is how many ports the reconcile attaches at once: each
// attach mostly waits for the kernel and the switch.
const reconcileWorkers = 8

// attachAll attaches every port, as the reconcile does; mu is held. It
// returns how many ports could not be attached.
func (c *Controller) attachAll(ctx context.Context, b datapath.Backend) (broken int, err error) {
	type result struct {
		port model.Port
		err  error
		ns   *nsfile.ID // the process's namespace the port was found in
	}
	ports := slices.Collect(maps.Values(c.ports))
	next := make(chan model.Port)
	results := make(chan result)
	var wg sync.WaitGroup
	for range min(reconcileWorkers, len(ports)) {
		wg.Go(func() {
			for p := range next {
				n := c.networks[p.Network]
				got := p
				ns, err := c.procNetnsHolds(ctx, b, n, p)
				if err == nil {
					got, err = b.AttachPort(ctx, n, p)
				}
				if err != nil {
					got, err = p, fmt.Errorf("port %s: %w", p.Name, err)
				}
				results <- result{got, err, ns}
			}
		})
	}
	go func() {
		for _, p := range ports {
			next <- p
		}
		close(next)
		wg.Wait()
		close(results)
	}()
	var storeErrs []error
	for r := range results {
		if r.ns != nil && r.err == nil {
			c.netnsIDs[r.port.Name] = *r.ns
		}
		switch {
		case r.err != nil:
			// A port whose namespace went away while we were down stays in the
			// desired state until it is deleted; it must not hold back the others.
			// It shows down, and the watcher tries it again (drift.go).
			c.log.Warn("reconcile: port not attached", "err", r.err)
			c.down(r.port.Name, reasonOf(r.err, ReasonAttachFailed), r.err)
			broken++
		case r.port != c.ports[r.port.Name]:
			if err := c.store.UpdatePort(ctx, r.port); err != nil {
				storeErrs = append(storeErrs, err)
				continue
			}
			c.ports[r.port.Name] = r.port
			c.up(r.port.Name)
		default:
			c.up(r.port.Name)
		}
	}
	for name := range c.faults {
		if _, ok := c.ports[name]; !ok {
			c.forget(name) // gone from the state read again (cluster.go, resync)
		}
	}
	return broken, errors.Join(storeErrs...)
}

// Ready returns nil when the controller can change the datapath, else why
// not. It does not wait for a change in progress.
func (c *Controller) Ready() error {
	return c.status().ready()
}

// readyLocked is Ready for a method that holds mu and is about to change
// the datapath.
func (c *Controller) readyLocked() error {
	return (&status{backend: c.backend, notReady: c.notReady}).ready()
}

func (s *status) ready() error {
	if s.backend == nil {
		return fmt.Errorf("%w: %s", ErrNotReady, s.notReady)
	}
	if err := s.backend.Ready(); err != nil {
		return fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	return nil
}

// rollback undoes a failed change on a context of its own: the request's may
// already be cancelled. What cannot be undone now is left to the next reconcile.
func (c *Controller) rollback(what string, undo func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	if err := undo(ctx); err != nil {
		c.log.Error("rollback incomplete; the next reconcile will finish it", "object", what, "err", err)
	}
}

// sortedValues never returns nil, so that an empty list is [] in JSON, not null.
func sortedValues[T any](m map[string]T, key func(T) string) []T {
	values := make([]T, 0, len(m))
	values = slices.AppendSeq(values, maps.Values(m))
	slices.SortFunc(values, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	return values
}

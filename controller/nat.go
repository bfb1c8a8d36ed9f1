package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Floating IPs and port forwards (docs/DESIGN.md §8.5) are the cluster's
// objects, like security groups; each names a port, and only the port's
// host enforces it. The backend takes one model.NAT of this host, computed
// from the whole desired state (natLocked) after every change that may
// alter it: the backend sends only what differs. The store checks the
// objects against each other and deletes a port's with it.

// natKind is what the controller does alike for floating IPs and
// forwards: T is the stored object.
type natKind[T comparable] struct {
	what    string // in messages: "floating IP"
	objects func(*cache) map[string]T
	kind    string // of its store.Event
	put     func(store.Store, context.Context, T) (int64, error)
	del     func(store.Store, context.Context, string) (int64, error)
	port    func(T) string
}

func fipKind() natKind[model.FloatingIP] {
	return natKind[model.FloatingIP]{
		what:    "floating IP",
		kind:    store.KindFloatingIP,
		objects: func(c *cache) map[string]model.FloatingIP { return c.fips },
		put:     store.Store.PutFloatingIP,
		del:     store.Store.DeleteFloatingIP,
		port:    func(f model.FloatingIP) string { return f.Port },
	}
}

func fwdKind() natKind[model.PortForward] {
	return natKind[model.PortForward]{
		what:    "port forward",
		kind:    store.KindPortForward,
		objects: func(c *cache) map[string]model.PortForward { return c.fwds },
		put:     store.Store.PutPortForward,
		del:     store.Store.DeletePortForward,
		port:    func(f model.PortForward) string { return f.Port },
	}
}

// WithLocalAddrs reads the host's own addresses with addrs instead of
// hostnet.LocalAddrs: for tests only, whose host is not the one under test.
func WithLocalAddrs(addrs func() ([]netip.Addr, error)) Option {
	return func(c *Controller) { c.localAddrs = addrs }
}

// WithBroadcasts reads the host's broadcast addresses with addrs instead
// of hostnet.Broadcasts: for tests only.
func WithBroadcasts(addrs func() ([]netip.Addr, error)) Option {
	return func(c *Controller) { c.broadcasts = addrs }
}

// FloatingIPs lists the floating IPs by name: of one port when port is not
// empty.
func (c *Controller) FloatingIPs(port string) ([]v1.FloatingIP, error) {
	return listNAT(c, fipKind(), port, c.fipView)
}

// PortForwards lists the port forwards by name: of one port when port is
// not empty.
func (c *Controller) PortForwards(port string) ([]v1.PortForward, error) {
	return listNAT(c, fwdKind(), port, c.fwdView)
}

func listNAT[T comparable, V any](c *Controller, k natKind[T], port string, view func(T) V) ([]V, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.anyPort(port); port != "" && !ok {
		return nil, fmt.Errorf("%w: port %q", ErrNotFound, port)
	}
	views := []V{}
	objects := k.objects(&c.cache)
	for _, name := range slices.Sorted(maps.Keys(objects)) {
		if o := objects[name]; port == "" || k.port(o) == port {
			views = append(views, view(o))
		}
	}
	return views, nil
}

// FloatingIP returns one floating IP; with stats, also its counters, which
// its port's host has (another host's port: none).
func (c *Controller) FloatingIP(ctx context.Context, name string, stats bool) (v1.FloatingIP, error) {
	return getNAT(c, ctx, fipKind(), name, stats, c.fipView, func(v *v1.FloatingIP, s datapath.NATStats) {
		v.Stats = &v1.NATStats{}
		for _, f := range s.Floating {
			if f.Name == name {
				v.Stats = &v1.NATStats{Connections: f.ConnectionsIn, ConnectionsOut: f.ConnectionsOut}
			}
		}
	})
}

// PortForward returns one port forward; with stats, also its counters,
// which its port's host has (another host's port: none).
func (c *Controller) PortForward(ctx context.Context, name string, stats bool) (v1.PortForward, error) {
	return getNAT(c, ctx, fwdKind(), name, stats, c.fwdView, func(v *v1.PortForward, s datapath.NATStats) {
		v.Stats = &v1.NATStats{}
		for _, f := range s.Forwards {
			if f.Name == name {
				v.Stats = &v1.NATStats{Connections: f.Connections, Packets: f.Packets, Bytes: f.Bytes}
			}
		}
	})
}

// getNAT renders one object and, with stats and on its port's host, fills
// in its counters.
func getNAT[T comparable, V any](c *Controller, ctx context.Context, k natKind[T], name string, stats bool,
	view func(T) V, fill func(*V, datapath.NATStats)) (V, error) {
	c.mu.Lock()
	o, ok := k.objects(&c.cache)[name]
	var v V
	_, local := c.ports[k.port(o)]
	if ok {
		v = view(o)
	}
	c.mu.Unlock()
	switch {
	case !ok:
		return v, fmt.Errorf("%w: %s %q", ErrNotFound, k.what, name)
	case !stats || !local:
		return v, nil
	}
	s, err := c.NATStats(ctx)
	if err != nil {
		var none V
		return none, err
	}
	fill(&v, s)
	return v, nil
}

// NATStats returns the floating IPs' and forwards' counters of the
// backend (for the exporter, and ?stats=true).
func (c *Controller) NATStats(ctx context.Context) (datapath.NATStats, error) {
	st := c.status()
	if st.backend == nil {
		return datapath.NATStats{}, fmt.Errorf("%w: %s", ErrNotReady, st.notReady)
	}
	ne := capabilities(st.backend).NAT
	if ne == nil {
		return datapath.NATStats{}, untranslated(st.backend)
	}
	return ne.NATStats(ctx)
}

func untranslated(b datapath.Backend) error {
	return fmt.Errorf("%w: the %s backend does not enforce floating IPs and port forwards", ErrUnsupported, b.Info().Backend)
}

// PutFloatingIP creates a floating IP, confirms an identical one, or
// replaces one (created=false for both) — moved to another address or
// port in one change of the host's rules. On any failure the previous
// state is restored.
func (c *Controller) PutFloatingIP(ctx context.Context, name string, spec v1.FloatingIPSpec) (v1.FloatingIP, bool, error) {
	f, err := model.NewFloatingIP(name, spec)
	if err != nil {
		return v1.FloatingIP{}, false, err
	}
	return putNAT(c, ctx, fipKind(), f, name, c.fipView, func(p model.Port) error {
		// Only the port's host knows its addresses; another host's
		// leaves the floating IP out if it is one (ResolveNAT).
		if !c.isLocal(p) {
			return nil
		}
		addrs, err := c.localAddrs()
		if err != nil {
			return err
		}
		if slices.Contains(addrs, f.Address) {
			return fmt.Errorf("%w: address %s is one of host %s's own; a port forward shares the host's address", ErrConflict, f.Address, c.host)
		}
		// The rule takes every packet to the address: the host's
		// directed broadcasts would go to the port.
		if bcast, err := c.broadcasts(); err != nil {
			return err
		} else if slices.Contains(bcast, f.Address) {
			return fmt.Errorf("%w: address %s is a broadcast address of host %s's subnets", ErrConflict, f.Address, c.host)
		}
		return nil
	})
}

// PutPortForward creates a port forward, confirms an identical one, or
// replaces one (created=false for both) in one change of the host's rules.
// On any failure the previous state is restored.
func (c *Controller) PutPortForward(ctx context.Context, name string, spec v1.PortForwardSpec) (v1.PortForward, bool, error) {
	f, err := model.NewPortForward(name, spec)
	if err != nil {
		return v1.PortForward{}, false, err
	}
	return putNAT(c, ctx, fwdKind(), f, name, c.fwdView, func(p model.Port) error {
		// A host_ip not the host's would translate connections to a
		// third party: the rules' fib check translates nothing then,
		// but the forward would promise what nothing does. Only the
		// port's host knows its addresses; another host's port is
		// stored and its host leaves the forward out (docs/API.md).
		if !f.HostIP.IsValid() || !c.isLocal(p) {
			return nil
		}
		addrs, err := c.localAddrs()
		if err != nil {
			return err
		}
		if !slices.Contains(addrs, f.HostIP) {
			return fmt.Errorf("%w: host_ip %s is not an address of host %s, the port's", ErrConflict, f.HostIP, c.host)
		}
		return nil
	})
}

// putNAT stores o and hands the backend the NAT with it. The store checks
// o against every host's objects; check judges what only the port's host
// can (its own addresses), before anything is stored.
func putNAT[T comparable, V any](c *Controller, ctx context.Context, k natKind[T], o T, name string,
	view func(T) V, check func(model.Port) error) (v V, created bool, err error) {
	defer c.exclusive()()
	defer c.publish()
	objects := k.objects(&c.cache)
	old, exists := objects[name]
	if exists && old == o {
		return view(old), false, nil
	}
	if err := c.readyLocked(); err != nil {
		return v, false, err
	}
	if capabilities(c.backend).NAT == nil {
		// Stored, the object would promise a translation nothing makes.
		return v, false, untranslated(c.backend)
	}
	if p, ok := c.anyPort(k.port(o)); ok {
		if err := check(p); err != nil {
			return v, false, err
		}
	}
	rev, err := k.put(c.store, ctx, o)
	if err != nil {
		return v, false, err // the store says what it was storing
	}
	c.wrote(k.kind, name, rev)
	objects[name] = o
	if err := c.enforceNATLocked(ctx); err != nil {
		c.rollback(k.what+" "+name, func(ctx context.Context) error {
			return restoreNAT(c, ctx, k, name, old, exists)
		})
		return v, false, fmt.Errorf("%w: store %s %q", err, k.what, name)
	}
	return view(o), !exists, nil
}

// DeleteFloatingIP removes a floating IP; its rules and connections go at
// once.
func (c *Controller) DeleteFloatingIP(ctx context.Context, name string) error {
	return deleteNAT(c, ctx, fipKind(), name)
}

// DeletePortForward removes a port forward; its rules and connections go
// at once.
func (c *Controller) DeletePortForward(ctx context.Context, name string) error {
	return deleteNAT(c, ctx, fwdKind(), name)
}

func deleteNAT[T comparable](c *Controller, ctx context.Context, k natKind[T], name string) error {
	defer c.exclusive()()
	defer c.publish()
	objects := k.objects(&c.cache)
	old, ok := objects[name]
	if !ok {
		return fmt.Errorf("%w: %s %q", ErrNotFound, k.what, name)
	}
	if err := c.readyLocked(); err != nil {
		return err
	}
	rev, err := k.del(c.store, ctx, name)
	if err != nil {
		return err
	}
	c.wrote(k.kind, name, rev)
	delete(objects, name)
	if err := c.enforceNATLocked(ctx); err != nil {
		c.rollback(k.what+" "+name, func(ctx context.Context) error {
			return restoreNAT(c, ctx, k, name, old, true)
		})
		return fmt.Errorf("%w: delete %s %q", err, k.what, name)
	}
	return nil
}

// restoreNAT undoes a change the backend refused: the old object stored
// again, or the new one deleted; then the NAT of the restored state is
// handed over. The cache follows the store: what the store did not undo
// stays, for the next reconcile. Both locks are held.
func restoreNAT[T comparable](c *Controller, ctx context.Context, k natKind[T], name string, old T, existed bool) error {
	objects := k.objects(&c.cache)
	var rev int64
	var err error
	if existed {
		if rev, err = k.put(c.store, ctx, old); err == nil {
			objects[name] = old
		}
	} else if rev, err = k.del(c.store, ctx, name); err == nil {
		delete(objects, name)
	}
	c.wrote(k.kind, name, rev)
	return errors.Join(err, c.enforceNATLocked(ctx))
}

// fipView renders a floating IP with its port resolved; mu is held.
func (c *Controller) fipView(f model.FloatingIP) v1.FloatingIP {
	p, _ := c.anyPort(f.Port)
	p.Host = c.hostOf(p)
	return f.View(p)
}

// fwdView renders a port forward with its port resolved; mu is held.
func (c *Controller) fwdView(f model.PortForward) v1.PortForward {
	p, _ := c.anyPort(f.Port)
	p.Host = c.hostOf(p)
	return f.View(p)
}

// natLocked is the NAT of this host: the objects of its ports that are
// attached and not being changed — a port being detached loses its rules
// first, one being attached gets them once it forwards. What this host
// cannot enforce is left out, logged once and counted. mu is held.
func (c *Controller) natLocked(hostAddrs []netip.Addr) model.NAT {
	ports := make(map[string]model.Port, len(c.ports))
	for name, p := range c.ports {
		if _, busy := c.busy[name]; !busy {
			ports[name] = p
		}
	}
	n, left := model.ResolveNAT(slices.Collect(maps.Values(c.fips)), slices.Collect(maps.Values(c.fwds)), ports, hostAddrs)
	seen := make(map[string]string, len(left))
	for _, l := range left {
		key := l.Kind + " " + l.Name
		seen[key] = l.Reason
		if c.natLeft[key] != l.Reason {
			c.log.Warn("nat left out", "kind", l.Kind, "name", l.Name, "reason", l.Reason)
		}
	}
	c.natLeft = seen
	c.metrics.natLeftOut.Set(float64(len(left)))
	return n
}

// enforceNATLocked hands the backend the NAT of the desired state; both
// locks are held (exclusive), so no syncNAT runs meanwhile.
func (c *Controller) enforceNATLocked(ctx context.Context) error {
	ne := capabilities(c.backend).NAT
	if ne == nil {
		return nil
	}
	addrs, err := c.localAddrs()
	if err != nil {
		return err
	}
	return ne.SetNAT(ctx, c.natLocked(addrs))
}

// syncNAT hands the backend the NAT of the desired state, for a change
// that holds changing shared: attaches and detaches of ports that NAT
// objects name, and other hosts' changes of the objects. natMu makes the
// last to hand over the last to have computed.
func (c *Controller) syncNAT(ctx context.Context) error {
	c.natMu.Lock()
	defer c.natMu.Unlock()
	addrs, err := c.localAddrs()
	if err != nil {
		return err
	}
	c.mu.Lock()
	ne, n := capabilities(c.backend).NAT, c.natLocked(addrs)
	c.mu.Unlock()
	if ne == nil {
		return nil
	}
	if err := ne.SetNAT(ctx, n); err != nil {
		return fmt.Errorf("hand the floating IPs and port forwards to the datapath: %w", err)
	}
	return nil
}

// natChanged asks the loop on natDirty (retryNAT) to hand the NAT over
// again: after a change whose request could not wait for it (another
// host's) or must not fail for it (a port attached or gone).
func (c *Controller) natChanged() { wake(c.natDirty) }

// retryNAT is syncNAT for the loop on natDirty, which has no request to
// fail: a refusal is counted and tried again after a pause.
func (c *Controller) retryNAT(ctx context.Context) {
	if err := c.syncNAT(ctx); err != nil {
		c.metrics.natSyncErrors.Inc()
		c.log.Error("floating IPs and port forwards not enforced as they are; retrying", "err", err)
		time.AfterFunc(syncRetry, c.natChanged)
	}
}

// syncPortNAT hands over the NAT around a change of port name, which
// holds changing shared, when objects name it; a refusal fails nothing
// (the port's change is done, or is not the NAT's to stop) and is retried
// in the background.
func (c *Controller) syncPortNAT(ctx context.Context, name string) {
	c.mu.Lock()
	named := c.namedByNAT(name)
	c.mu.Unlock()
	if !named {
		return
	}
	if err := c.syncNAT(ctx); err != nil {
		c.metrics.natSyncErrors.Inc()
		c.log.Error("floating IPs and port forwards not enforced as they are; retrying", "port", name, "err", err)
		c.natChanged()
	}
}

// namedByNAT reports whether a floating IP or forward names port; mu is
// held.
func (c *Controller) namedByNAT(port string) bool {
	for _, f := range c.fips {
		if f.Port == port {
			return true
		}
	}
	for _, f := range c.fwds {
		if f.Port == port {
			return true
		}
	}
	return false
}

// dropNATOf forgets the objects of a deleted port, which the store deleted
// with it; mu is held.
func (c *Controller) dropNATOf(port string) {
	maps.DeleteFunc(c.fips, func(_ string, f model.FloatingIP) bool { return f.Port == port })
	maps.DeleteFunc(c.fwds, func(_ string, f model.PortForward) bool { return f.Port == port })
}

// applyFloatingIP and applyPortForward record another host's change of a
// floating IP or forward (cluster.go), which this host's backend learns
// when it names one of this host's ports.
func (c *Controller) applyFloatingIP(ev store.Event) { applyNAT(c, fipKind(), ev, ev.FloatingIP) }

func (c *Controller) applyPortForward(ev store.Event) {
	applyNAT(c, fwdKind(), ev, ev.PortForward)
}

func applyNAT[T comparable](c *Controller, k natKind[T], ev store.Event, o *T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stale(ev) {
		return
	}
	name := ev.Name
	objects := k.objects(&c.cache)
	old, had := objects[name]
	local := had && c.isLocalName(k.port(old))
	switch {
	case o != nil && had && old == *o:
		return // this host's own write, or already known
	case o != nil:
		objects[name] = *o
		local = local || c.isLocalName(k.port(*o))
	case !had:
		return
	default:
		delete(objects, name)
	}
	if local {
		c.natChanged()
	}
}

// isLocalName reports whether port is one of this host's; mu is held.
func (c *Controller) isLocalName(port string) bool {
	_, ok := c.ports[port]
	return ok
}

// loadNAT puts the stored floating IPs and forwards into a cache whose
// ports are loaded: each must name one, or the store was changed behind
// the stores' backs (they delete a port's objects with it).
func (fresh *cache) loadNAT(s store.State) error {
	for _, f := range s.FloatingIPs {
		if _, ok := fresh.anyPort(f.Port); !ok {
			return fmt.Errorf("load floating IP %s: port %q is not in the store", f.Name, f.Port)
		}
		fresh.fips[f.Name] = f
	}
	for _, f := range s.PortForwards {
		if _, ok := fresh.anyPort(f.Port); !ok {
			return fmt.Errorf("load port forward %s: port %q is not in the store", f.Name, f.Port)
		}
		fresh.fwds[f.Name] = f
	}
	return nil
}

// anyPort is the port of that name, of any host; mu is held.
func (c *cache) anyPort(name string) (model.Port, bool) {
	if p, ok := c.ports[name]; ok {
		return p, true
	}
	p, ok := c.remote[name]
	return p, ok
}

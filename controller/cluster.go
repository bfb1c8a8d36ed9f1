package controller

// A host of a cluster keeps the same cache as a single host — networks,
// routers, its own ports — plus the other hosts' ports and the live hosts,
// and follows the store's changes: the other hosts' networks and routers are
// ensured here too, and the backend is handed the remote ports this host
// needs. The store is the authority; this host's own writes come back as
// events that change nothing, and the events still on their way from
// before one of them are skipped (stale).

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Bounds of the work one store event makes, and the pause before a
// failed hand-over in the background (of the remote ports, of the
// security groups' policy) is tried again.
const (
	applyTimeout = 30 * time.Second
	syncRetry    = time.Second
)

// follow applies the store's changes after revision rev until ctx ends.
// When the store cannot replay what this host missed, the state is read
// whole again and reconciled.
func (c *Controller) follow(ctx context.Context, rev int64) {
	go c.loop(ctx, c.remoteDirty, c.syncRemote)
	for ctx.Err() == nil {
		if err := c.watch(ctx, rev); err != nil {
			c.log.Warn("reading the desired state again", "reason", err)
		}
		rev = c.resync(ctx)
	}
}

// watch applies the changes after revision rev, in order, until ctx ends
// or the store cannot replay them; it says why it stopped. A change the
// datapath refuses is logged and left to the next resync or restart: one
// object must not hold back every other change.
func (c *Controller) watch(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for ev := range c.cluster.Watch(ctx, rev+1) {
		if ev.Reset {
			return errors.New("the store no longer has the changes since the last one applied")
		}
		if err := c.apply(ctx, ev); err != nil {
			c.log.Error("apply a change of the cluster", "kind", ev.Kind, "name", ev.Name, "err", err)
		}
	}
	return ctx.Err()
}

// resync reads the state whole and reconciles the host with it, retrying
// with backoff until it can or ctx ends, and returns the revision it read.
func (c *Controller) resync(ctx context.Context) int64 {
	backoff := 500 * time.Millisecond
	for {
		rev, err := c.reload(ctx)
		if err == nil || ctx.Err() != nil {
			return rev
		}
		c.log.Error("read the desired state again", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return rev
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// reload is one attempt of resync. No change may run between the read and
// the swap, or the swap would drop it; reads are still answered.
func (c *Controller) reload(ctx context.Context) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	c.changing.Lock()
	fresh, rev, err := c.load(lctx)
	if err != nil {
		c.changing.Unlock()
		return 0, err
	}
	c.mu.Lock()
	c.cache = fresh
	b := c.backend
	c.publish()
	c.mu.Unlock()
	c.changing.Unlock()
	if b == nil {
		return rev, nil
	}
	rctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	return rev, c.reconcile(rctx, b)
}

// object names a stored object: its kind (store.KindNetwork, ...) and
// its name.
type object struct{ kind, name string }

// wrote records that this host's own write of an object committed at
// revision rev (0: unknown, which records nothing). The write is applied
// here already; the watch still sends the changes of the object before
// it, and stale skips them. mu is held.
func (c *cache) wrote(kind, name string, rev int64) {
	if o := (object{kind, name}); rev > c.written[o] {
		c.written[o] = rev
	}
}

// stale reports whether ev is older than this host's own latest write of
// its object: applied, it would undo that write until the echo came (a
// network's old DNS, a group's removed rule allowing again, a deleted
// object back). The watch sends changes in order, so an entry is dropped
// once a change of its object at or past its revision arrives — the echo
// of the write itself, which is applied as any change (it changes
// nothing, or repairs a rollback that failed); a reload reads past every
// write and starts with none. mu is held.
func (c *cache) stale(ev store.Event) bool {
	o := object{ev.Kind, ev.Name}
	rev, ok := c.written[o]
	if ok && ev.Revision >= rev {
		delete(c.written, o)
	}
	return ok && ev.Revision < rev
}

// apply makes one change of the store real on this host.
func (c *Controller) apply(ctx context.Context, ev store.Event) error {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	switch ev.Kind {
	case store.KindNetwork:
		return c.applyNetwork(ctx, ev)
	case store.KindRouter:
		return c.applyRouter(ctx, ev)
	case store.KindPort:
		if drop, ok := c.applyPort(ev); ok {
			return c.dropPort(ctx, drop)
		}
	case store.KindHost:
		c.applyHost(ev)
	case store.KindSecurityGroup:
		c.applySecurityGroup(ev)
	case store.KindFloatingIP:
		c.applyFloatingIP(ev)
	case store.KindPortForward:
		c.applyPortForward(ev)
	}
	return nil
}

// applySecurityGroup records a group or its deletion, which the backend
// learns with the next policy.
func (c *Controller) applySecurityGroup(ev store.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stale(ev) {
		return
	}
	old, had := c.groups[ev.Name]
	switch g := ev.SecurityGroup; {
	case g != nil && had && old.ID == g.ID && old.SameSpec(*g):
		return // this host's own write, or already known
	case g != nil:
		c.groups[ev.Name] = *g
	case !had:
		return
	default:
		delete(c.groups, ev.Name)
	}
	c.policyChanged()
}

func (c *Controller) applyNetwork(ctx context.Context, ev store.Event) error {
	defer c.exclusive()()
	defer c.publish()
	if c.stale(ev) {
		return nil
	}
	old, had := c.networks[ev.Name]
	switch n := ev.Network; {
	case n != nil && had && old == *n:
		return nil // this host's own write, or already known
	case n != nil && had && old.ID == n.ID && old.SameImmutable(*n):
		// Changed in place (changeNetwork): its ports stay.
		c.networks[ev.Name] = *n
		if c.backend == nil {
			return nil
		}
		if err := c.backend.EnsureNetwork(ctx, *n); err != nil {
			return fmt.Errorf("ensure network %s: %w", ev.Name, err)
		}
		return nil
	}
	if had {
		// The store deletes no network a port holds an address in, so
		// none of this host's ports is on it.
		if c.backend != nil {
			if err := c.backend.DeleteNetwork(ctx, old); err != nil {
				return fmt.Errorf("delete network %s: %w", ev.Name, err)
			}
		}
		delete(c.networks, ev.Name)
		delete(c.pools, ev.Name)
	}
	if ev.Network == nil {
		return nil
	}
	if c.backend != nil {
		if err := c.backend.EnsureNetwork(ctx, *ev.Network); err != nil {
			return fmt.Errorf("ensure network %s: %w", ev.Name, err)
		}
	}
	return c.addNetwork(*ev.Network)
}

func (c *Controller) applyRouter(ctx context.Context, ev store.Event) error {
	defer c.exclusive()()
	defer c.publish()
	if c.stale(ev) {
		return nil
	}
	old, had := c.routers[ev.Name]
	switch {
	case ev.Router != nil && had && old.SameSpec(*ev.Router):
		return nil
	case ev.Router != nil:
		c.setRouter(*ev.Router)
	case !had:
		return nil
	default:
		delete(c.routers, ev.Name)
		c.peersChanged()
	}
	switch {
	case c.backend == nil:
		return nil
	case ev.Router == nil:
		if err := c.backend.DeleteRouter(ctx, old); err != nil {
			return fmt.Errorf("delete router %s: %w", ev.Name, err)
		}
	default:
		if err := c.backend.EnsureRouter(ctx, *ev.Router); err != nil {
			return fmt.Errorf("ensure router %s: %w", ev.Name, err)
		}
	}
	return nil
}

// applyPort records another host's port, or its deletion. A deletion of
// one of this host's own ports — another host took this one for gone — is
// returned, for the caller to detach it.
func (c *Controller) applyPort(ev store.Event) (drop model.Port, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	if p := ev.Port; p != nil {
		if p.Host == c.host {
			return drop, false // written by this host, which knows it already
		}
		old, had := c.remote[p.Name]
		pool, ok := c.pools[p.Network]
		if !ok {
			c.log.Error("port of an unknown network", "port", p.Name, "network", p.Network, "host", p.Host)
			return drop, false
		}
		if had {
			c.release(old)
		}
		// An address held for it since this host lost the race for it.
		pool.Release(p.IP, heldElsewhere)
		if err := pool.Reserve(p.IP, p.Name); err != nil {
			c.log.Error("another host's port has an address this host holds", "port", p.Name, "host", p.Host, "err", err)
		}
		c.remote[p.Name] = *p
		if !had || old.IP != p.IP || old.MAC != p.MAC || old.Host != p.Host || old.Network != p.Network {
			c.remoteChanged()
		}
		if (old.SecurityGroups != "" || p.SecurityGroups != "") && (old.IP != p.IP || old.SecurityGroups != p.SecurityGroups) {
			c.policyChanged() // its address is in its groups' members
		}
		return drop, false
	}
	if old, ok := c.remote[ev.Name]; ok {
		delete(c.remote, ev.Name)
		c.release(old)
		c.dropNATOf(ev.Name) // deleted with it
		c.remoteChanged()
		if old.SecurityGroups != "" {
			c.policyChanged()
		}
		return drop, false
	}
	p, ok := c.ports[ev.Name]
	if _, busy := c.busy[ev.Name]; !ok || busy {
		return drop, false // gone already, or this host is deleting it
	}
	c.busy[ev.Name] = p
	return p, true
}

// dropPort detaches a port of this host whose record another host deleted:
// the record is the truth. It runs before the next change is applied, which
// may delete the port's network.
func (c *Controller) dropPort(ctx context.Context, p model.Port) error {
	c.changing.RLock()
	defer c.changing.RUnlock()
	c.mu.Lock()
	n, b := c.networks[p.Network], c.backend
	c.mu.Unlock()
	c.syncPortNAT(ctx, p.Name) // p is busy: its rules go first
	var err error
	if b != nil {
		err = c.detach(ctx, b, n, p)
	}
	if err == nil {
		c.leaveBeforeRelease(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	delete(c.busy, p.Name)
	if err != nil {
		c.natChanged() // its rules went with the try
		return fmt.Errorf("detach port %s, deleted by another host: %w", p.Name, err)
	}
	c.log.Warn("port deleted by another host", "port", p.Name)
	c.release(p)
	delete(c.ports, p.Name)
	c.forget(p.Name)
	c.dropNATOf(p.Name)
	c.remoteChanged()
	return nil
}

func (c *Controller) applyHost(ev store.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	old, had := c.hosts[ev.Name]
	switch {
	case ev.Host != nil && had && old == *ev.Host:
		return
	case ev.Host != nil:
		c.hosts[ev.Name] = *ev.Host
		c.log.Info("host up", "host", ev.Name, "underlay_ip", ev.Host.UnderlayIP)
	case had:
		delete(c.hosts, ev.Name)
		c.log.Info("host gone: its lease expired", "host", ev.Name)
	default:
		return
	}
	c.remoteChanged()
}

// remotePorts is what this host needs of the other hosts' ports: those of
// live hosts in the networks its own ports are in, and in the networks
// routed to those (routing happens on the sending host). mu is held.
func (c *Controller) remotePorts() []model.RemotePort {
	need := map[string]bool{}
	for _, p := range c.ports {
		need[p.Network] = true
	}
	peers := model.Peers(slices.Collect(maps.Values(c.routers)))
	for n := range maps.Clone(need) {
		for _, m := range peers[n] {
			need[m] = true
		}
	}
	var out []model.RemotePort
	for _, p := range sortedValues(c.remote, func(p model.Port) string { return p.Name }) {
		h, live := c.hosts[p.Host]
		if live && need[p.Network] && p.Host != c.host {
			out = append(out, model.RemotePort{Port: p, HostIP: h.UnderlayIP})
		}
	}
	return out
}

// remoteChanged asks the loop on remoteDirty to hand the remote ports over
// again.
func (c *Controller) remoteChanged() { wake(c.remoteDirty) }

// wake asks the loop waiting on dirty to run, unless it is asked already.
func wake(dirty chan<- struct{}) {
	select {
	case dirty <- struct{}{}:
	default:
	}
}

// loop runs sync whenever dirty is woken, until ctx ends, with changing
// held shared: no reconcile runs meanwhile.
func (c *Controller) loop(ctx context.Context, dirty <-chan struct{}, sync func(context.Context)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-dirty:
		}
		c.changing.RLock()
		sctx, cancel := context.WithTimeout(ctx, applyTimeout)
		sync(sctx)
		cancel()
		c.changing.RUnlock()
	}
}

// syncRemote hands the backend the remote ports this host needs now. The
// caller holds changing shared, so that no reconcile runs meanwhile.
func (c *Controller) syncRemote(ctx context.Context) {
	c.remoteMu.Lock()
	defer c.remoteMu.Unlock()
	c.mu.Lock()
	b, ports := c.backend, c.remotePorts()
	c.mu.Unlock()
	ov := capabilities(b).Overlay
	if ov == nil {
		return
	}
	if err := ov.SetRemotePorts(ctx, ports); err != nil {
		c.log.Error("hand the remote ports to the datapath; retrying", "ports", len(ports), "err", err)
		time.AfterFunc(syncRetry, c.remoteChanged)
		return
	}
	c.metrics.remotePorts.Set(float64(len(ports)))
}

// deleteRemotePort deletes another host's port, which only that host can
// do while it is live: it must detach it. A gone host's ports can be
// deleted anywhere, to free their addresses.
func (c *Controller) deleteRemotePort(ctx context.Context, name string) error {
	c.mu.Lock()
	p, ok := c.remote[name]
	_, live := c.hosts[p.Host]
	_, busy := c.busy[name]
	var err error
	switch {
	case !ok:
		err = fmt.Errorf("%w: port %q", ErrNotFound, name)
	case live:
		err = fmt.Errorf("%w: port %q is on host %s, which is up: delete it there", ErrConflict, name, p.Host)
	case busy:
		err = fmt.Errorf("%w: port %q is being changed by another request", ErrConflict, name)
	}
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.busy[name] = p
	c.mu.Unlock()

	err = c.store.DeletePort(ctx, name, p.Host)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	delete(c.busy, name)
	if err != nil {
		return fmt.Errorf("delete port %q of gone host %s: %w", name, p.Host, err)
	}
	delete(c.remote, name)
	c.release(p)
	c.dropNATOf(name) // deleted with it
	if p.SecurityGroups != "" {
		c.policyChanged()
	}
	return nil
}

// HostName is the name of this controller's host.
func (c *Controller) HostName() string { return c.host }

// Clustered reports whether the state is shared by the hosts of a cluster.
func (c *Controller) Clustered() bool { return c.cluster != nil }

// Hosts lists the live hosts by name (a single host: itself), with how many
// ports each has.
func (c *Controller) Hosts() []v1.Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	count := map[string]int{c.host: len(c.ports)}
	for _, p := range c.remote {
		count[p.Host]++
	}
	views := []v1.Host{}
	if c.cluster == nil {
		return append(views, v1.Host{Name: c.host, Ports: len(c.ports), Self: true})
	}
	for _, h := range sortedValues(c.hosts, func(h store.Host) string { return h.Name }) {
		views = append(views, v1.Host{Name: h.Name, UnderlayIP: h.UnderlayIP.String(), Ports: count[h.Name], Self: h.Name == c.host})
	}
	return views
}

// allocationSeed is where a host starts looking for free addresses: hosts
// of a cluster allocate from one subnet at once, and starting each at its
// own place keeps them from all trying the same address first.
func allocationSeed(host string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(host))
	return h.Sum64()
}

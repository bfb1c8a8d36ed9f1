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
	"github.com/ovs-vnet/ovs-vnet/controller/ipam"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/fault"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Ports lists the ports by name: of one network when network is not empty,
// of one host when host is not empty. In a cluster they are every host's.
func (c *Controller) Ports(network, host string) ([]v1.Port, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.networks[network]; network != "" && !ok {
		return nil, fmt.Errorf("%w: network %q", ErrNotFound, network)
	}
	all := make(map[string]model.Port, len(c.ports)+len(c.remote))
	maps.Copy(all, c.remote)
	maps.Copy(all, c.ports)
	views := []v1.Port{}
	for _, p := range sortedValues(all, func(p model.Port) string { return p.Name }) {
		if (network == "" || p.Network == network) && (host == "" || c.hostOf(p) == host) {
			views = append(views, c.view(p))
		}
	}
	return views, nil
}

// Port returns one port, of any host.
func (c *Controller) Port(name string) (v1.Port, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.ports[name]
	if !ok {
		p, ok = c.remote[name]
	}
	if !ok {
		return v1.Port{}, fmt.Errorf("%w: port %q", ErrNotFound, name)
	}
	return c.view(p), nil
}

// view renders a port for the API; mu is held. An ofport is a number on
// its own host's switch only, so other hosts' ports show none.
func (c *Controller) view(p model.Port) v1.Port {
	if !c.isLocal(p) {
		p.Ofport = 0
	}
	p.Host = c.hostOf(p)
	v := p.View(c.networks[p.Network])
	if c.isLocal(p) {
		v.Status, v.StatusReason, v.StatusDetail = c.portStatus(p.Name)
	}
	return v
}

// hostOf names the host of a port; a single host's ports, whose records
// name no host, are this host's.
func (c *Controller) hostOf(p model.Port) string {
	if c.isLocal(p) {
		return c.host
	}
	return p.Host
}

// PutPort creates a port and returns once it forwards, confirms an identical
// one, or changes an existing one's mutable fields in place (created=false
// for both; docs/DESIGN.md §8.0). On any failure nothing of the port is
// left: no link, no OVS port, no address, no record — or, for a change in
// place, the port is as it was. Attaches of different ports run at once. A
// spec with ReleaseWithNetns replaces a port of the name whose namespace
// has left, once the new port passes every check, and upgrades the record
// of an older plugin's port (release.go).
func (c *Controller) PutPort(ctx context.Context, name string, spec v1.PortSpec) (view v1.Port, created bool, err error) {
	p, err := model.NewPort(name, spec)
	if err == nil {
		p, err = resolveTapIDs(ctx, p)
	}
	if err != nil {
		return view, false, err
	}
	if c.cluster != nil {
		// A single host's records name no host: they stay its own whatever
		// its name becomes.
		p.Host = c.host
	}
	// The namespace is the client's path and is looked at before any lock:
	// the check is bounded, but a slow one must hold up no other request.
	// Its verdict counts only for a new port (claimPort).
	p, netnsErr := c.checkNetns(ctx, p)
	c.changing.RLock()
	defer c.changing.RUnlock()
	r, view, err := c.reservePort(ctx, p, netnsErr, c.judgeLeft(ctx, p))
	switch {
	case err != nil:
		return view, false, err
	case r.backend == nil, r.was != nil:
		// The port exists, identical or with other groups or configure:
		// the client wants it forwarding, so a broken one — a CNI re-ADD's
		// new namespace at the old path, with its groups changed or not —
		// is repaired before the answer (drift.go).
		if r.was != nil {
			if view, err = c.changeInPlace(ctx, r); err != nil {
				return view, false, err
			}
		}
		pc := capabilities(c.status().backend).PortChecker
		view, err = c.ensurePort(ctx, pc, name, datapath.CheckAll)
		return view, false, err
	}
	p, n, backend := r.port, r.network, r.backend
	start := time.Now()
	var attached model.Port
	if p.SecurityGroups != "" {
		// Its rules are in place before it forwards: the policy names
		// the port (busy), and the backend sends its port's rules with
		// its attach (datapath.PolicyEnforcer).
		err = c.syncPolicy(ctx)
	}
	if err == nil {
		attached, err = backend.AttachPort(ctx, n, p)
	}
	rolledBack := err != nil
	if rolledBack {
		c.rollback("port "+name, func(ctx context.Context) error {
			// The record goes first: a detach from a stalled switch may use
			// up the bound, and a record left behind would make the next
			// PUT of the port a conflict and bring the port back at the
			// next start. What the detach leaves is no record's: the next
			// PUT of the port takes it over, the next start's Prune removes
			// it.
			return errors.Join(c.store.DeletePort(ctx, name, p.Host), c.detach(ctx, backend, n, p))
		})
	} else {
		c.metrics.attachDuration.Observe(time.Since(start).Seconds())
		fault.Point("attach-before-store-ofport")
		if attached != p {
			err = c.store.UpdatePort(ctx, attached)
		}
	}
	if rolledBack {
		// Claimed, the port was in the policy handed over for it, or
		// for any change meanwhile.
		c.leaveBeforeRelease(p)
	}
	view, err = c.attached(n, p, attached, rolledBack, err)
	if err == nil {
		c.syncPortNAT(ctx, name) // named meanwhile (another host's request)
	}
	if err == nil && procNetns(p) {
		c.seenIn(ctx, name, p)
	}
	if err == nil && c.cluster != nil {
		// This host may now need other hosts' ports it did not before, and
		// a ping right after the answer must reach them.
		c.syncRemote(ctx)
	}
	return view, err == nil, err
}

// attached records the outcome of an attach.
func (c *Controller) attached(n model.Network, p, attached model.Port, rolledBack bool, err error) (v1.Port, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	delete(c.busy, p.Name)
	switch {
	case rolledBack:
		c.release(p)
		return v1.Port{}, err
	case err != nil:
		// Attached, but the record lacks its results: the address stays
		// held for the record, and the next reconcile completes it.
		return v1.Port{}, err
	}
	c.ports[p.Name] = attached
	return c.view(attached), nil
}

// reservation is a port whose attach may go ahead: its name, address and
// interfaces are taken, its intent recorded. Or, with was, a change of an
// existing port's mutable fields that may go ahead: the port is busy.
type reservation struct {
	port    model.Port
	network model.Network
	backend datapath.Backend
	was     *model.Port // the port as it is, for a change in place
	// replaces is the port of its name whose namespace has left, released
	// before the port's record is stored (release.go).
	replaces *leftPort
	// upgrade: port is an existing port's record with what a newer plugin
	// asks for, to be stored; the datapath is not touched (release.go).
	upgrade bool
}

// reservePort checks p and, when it is new, reserves it: its name, address
// and interfaces are taken (busy) before its record is stored, which
// happens without mu, so that other requests are answered meanwhile. When
// an identical port exists it returns no backend and that port's view.
// netnsErr is why p's namespace cannot have p, if it cannot; left is the
// port of p's name whose namespace has left, if it has (judgeLeft).
func (c *Controller) reservePort(ctx context.Context, p model.Port, netnsErr error, left *leftPort) (r reservation, existing v1.Port, err error) {
	requested := p.IP
	r, existing, err = c.claimPort(p, netnsErr, left)
	switch {
	case err != nil:
		return r, existing, err
	case r.upgrade:
		existing, err = c.upgradePort(ctx, r.port)
		return reservation{}, existing, err
	case r.backend == nil, r.was != nil:
		return r, existing, nil
	case r.replaces != nil:
		if err := c.replace(ctx, r); err != nil {
			return reservation{}, existing, err
		}
		c.leavePolicy(r.replaces.port)
	}
	for try := 0; ; try++ {
		fault.Point("attach-after-ipam")
		// Intent first: a crash from here on finds the record at restart, and the
		// reconcile either completes the port or the user deletes it — nothing is
		// orphaned, since every link and OVS port we make is named after the record.
		err = c.store.CreatePort(ctx, r.port)
		if err == nil {
			fault.Point("attach-after-store-intent")
			return r, existing, nil
		}
		// The store knows every host's ports, the pool only those this host
		// has heard of: an allocated address another host took meanwhile is
		// held here until its port's record arrives, and another is tried.
		retry := !requested.IsValid() && errors.Is(err, store.ErrAddressInUse) && try < addressRetries
		if r.port, err = c.reclaim(r, retry, err); err != nil {
			// Claimed, the port was in the policy of any change
			// handed over meanwhile.
			c.leavePolicy(r.port)
			return reservation{}, existing, err
		}
	}
}

// claimPort is reservePort's part under mu: the checks, and the address.
// The port of p's name that left names (judgeLeft) is no obstacle to p,
// and is released (replace) only once p has passed every check here, so
// that a refused request changes nothing.
func (c *Controller) claimPort(p model.Port, netnsErr error, left *leftPort) (r reservation, existing v1.Port, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.networks[p.Network]
	if !ok {
		return r, existing, fmt.Errorf("%w: network %q", ErrNotFound, p.Network)
	}
	if o, ok := c.remote[p.Name]; ok {
		return r, existing, fmt.Errorf("%w: port %q exists on host %s", ErrConflict, p.Name, o.Host)
	}
	old, exists := c.ports[p.Name]
	if exists {
		if c.cluster == nil {
			p.Host = old.Host // what a single host's record says is no one's business
		}
		if old.SameSpec(p) {
			return r, c.view(old), nil
		}
	}
	if _, ok := c.busy[p.Name]; ok {
		return r, existing, fmt.Errorf("%w: port %q is being changed by another request", ErrConflict, p.Name)
	}
	if exists {
		if up, ok := old.UpgradedBy(p); ok {
			c.busy[p.Name] = old
			return reservation{port: up, network: n, upgrade: true}, c.view(old), nil
		}
		if old.SameImmutable(p) {
			r, err = c.claimInPlace(n, old, p)
			return r, existing, err
		}
		// What left judged may have been changed since by another request.
		if left == nil || !left.port.SameSpec(old) {
			return r, c.view(old), fmt.Errorf("%w: port %q exists with a different spec", ErrConflict, p.Name)
		}
	}
	if p.IP.IsValid() {
		if err := checkIP(n, p.IP); err != nil {
			return r, existing, err
		}
	}
	if p.MAC == "" {
		p.MAC = model.PortMAC(p.Name)
	}
	if err := c.datapathMACs().Check(p.MAC); err != nil {
		return r, existing, err
	}
	if err := c.checkUnique(p); err != nil {
		return r, existing, err
	}
	if netnsErr != nil {
		return r, existing, netnsErr
	}
	if err := c.readyLocked(); err != nil {
		return r, existing, err
	}
	if p.SecurityGroups != "" && capabilities(c.backend).Policy == nil {
		// Stored, the groups would promise a filter nothing enforces.
		return r, existing, unenforced(c.backend)
	}
	if p.IP, err = c.assignIP(n, p); err != nil {
		return r, existing, err
	}
	c.busy[p.Name] = p
	r = reservation{port: p, network: n, backend: c.backend}
	if exists {
		r.replaces = left
	}
	return r, existing, nil
}

// checkIP validates a requested address against the port's network.
func checkIP(n model.Network, ip netip.Addr) error {
	if !model.IsHostAddr(n.Subnet, ip) || ip == n.Gateway {
		return fmt.Errorf("%w: ip %s is not a usable host address of network %q (%s, gateway %s)",
			v1.ErrInvalid, ip, n.Name, n.Subnet, n.Gateway)
	}
	return nil
}

// reclaim takes back the address of a port whose record the store refused
// for cause, and, to retry, gives it another; without retry the port is
// given up.
func (c *Controller) reclaim(r reservation, retry bool, cause error) (model.Port, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := r.port
	c.release(p)
	c.holdForOther(p.Network, p.IP)
	if retry {
		ip, err := c.assignIP(r.network, model.Port{Name: p.Name})
		if err == nil {
			p.IP = ip
			c.busy[p.Name] = p
			return p, nil
		}
		cause = err
	}
	delete(c.busy, p.Name)
	return p, fmt.Errorf("create port %q: %w", p.Name, cause)
}

// datapathMACs are the MACs no port may have, as far as this host knows
// them; mu is held. Without a backend (not ready) the bridge is unknown, and
// the request is refused anyway.
func (c *Controller) datapathMACs() model.DatapathMACs {
	d := model.DatapathMACs{Networks: slices.Collect(maps.Keys(c.networks))}
	if c.backend != nil {
		d.Bridge = c.backend.Info().Bridge
	}
	for _, h := range c.hosts {
		d.Hosts = append(d.Hosts, h.UnderlayIP)
	}
	return d
}

// checkUnique refuses a port that would share an interface, or within its
// network a MAC, with an existing port or one being attached.
func (c *Controller) checkUnique(p model.Port) error {
	for _, ports := range []map[string]model.Port{c.ports, c.busy} {
		for _, o := range ports {
			if o.Name == p.Name || !c.isLocal(o) {
				continue // a port being detached; another host's being deleted (below)
			}
			switch {
			case o.HostIfname == p.HostIfname:
				return fmt.Errorf("%w: host interface %s is already port %q's", ErrConflict, p.HostIfname, o.Name)
			case p.Type == v1.PortVeth && o.Netns == p.Netns && o.Ifname == p.Ifname:
				return fmt.Errorf("%w: netns %s already has port %q as %s", ErrConflict, p.Netns, o.Name, p.Ifname)
			case o.Network == p.Network && o.MAC == p.MAC:
				return fmt.Errorf("%w: mac %s is already used by port %q in network %q", ErrConflict, p.MAC, o.Name, p.Network)
			}
		}
	}
	for _, o := range c.remote {
		if o.Name != p.Name && o.Network == p.Network && o.MAC == p.MAC {
			return fmt.Errorf("%w: mac %s is already used by port %q on host %s in network %q", ErrConflict, p.MAC, o.Name, o.Host, p.Network)
		}
	}
	return nil
}

// addressRetries bounds how often an allocated address may turn out to be
// taken by another host whose port this host has not heard of yet.
const addressRetries = 8

// heldElsewhere owns, in a pool, an address another host's port holds
// before this host has heard of that port.
const heldElsewhere = "(a port on another host)"

// holdForOther gives an address the store says is taken to the other host's
// port that has it — its record may have arrived while this host's claim
// held the address — or, not heard of yet, to heldElsewhere. mu is held.
func (c *Controller) holdForOther(network string, ip netip.Addr) {
	pool, ok := c.pools[network]
	if !ok {
		return
	}
	owner := heldElsewhere
	for _, o := range c.remote {
		if o.Network == network && o.IP == ip {
			owner = o.Name
		}
	}
	_ = pool.Reserve(ip, owner)
}

// assignIP reserves the requested address or allocates one.
func (c *Controller) assignIP(n model.Network, p model.Port) (ip netip.Addr, err error) {
	pool := c.pools[n.Name]
	if p.IP.IsValid() {
		err = pool.Reserve(p.IP, p.Name)
		ip = p.IP
	} else {
		ip, err = pool.Allocate(p.Name)
	}
	if errors.Is(err, ipam.ErrInUse) || errors.Is(err, ipam.ErrExhausted) {
		return ip, fmt.Errorf("%w: network %q: %v", ErrConflict, n.Name, err)
	}
	return ip, err
}

// DeletePort removes a port from the host and frees its address. The port's
// namespace is left alone, and a namespace or link that has already gone is
// fine. When the record cannot be deleted (the store is unreachable) the port
// is attached again: a failed request changes nothing.
func (c *Controller) DeletePort(ctx context.Context, name string) error {
	c.changing.RLock()
	defer c.changing.RUnlock()
	return c.deletePort(ctx, name, nil)
}

// deletePort is DeletePort with changing held shared. With judged, it
// deletes only this host's port that is still what judged is (a release,
// release.go): a request may have changed it since it was judged.
func (c *Controller) deletePort(ctx context.Context, name string, judged *model.Port) error {
	c.mu.Lock()
	if _, ok := c.remote[name]; ok && judged == nil {
		c.mu.Unlock()
		return c.deleteRemotePort(ctx, name)
	}
	p, ok := c.ports[name]
	_, busy := c.busy[name]
	err := c.readyLocked()
	switch {
	case !ok:
		err = fmt.Errorf("%w: port %q", ErrNotFound, name)
	case busy:
		err = fmt.Errorf("%w: port %q is being changed by another request", ErrConflict, name)
	case judged != nil && !judged.SameSpec(p):
		err = fmt.Errorf("%w: port %q was changed by another request", ErrConflict, name)
	}
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.busy[name] = p
	n, backend := c.networks[p.Network], c.backend
	c.mu.Unlock()

	restored, err := c.removePort(ctx, backend, n, p)
	if err == nil {
		c.leaveBeforeRelease(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	delete(c.busy, name)
	if err != nil {
		c.ports[name] = restored
		c.natChanged() // its rules went with the try
		return err
	}
	c.removed(p)
	return nil
}

// removePort detaches port p, which its caller has made busy, and deletes
// its record. When the record cannot be deleted p is attached again, and
// restored is what it then is.
func (c *Controller) removePort(ctx context.Context, backend datapath.Backend, n model.Network, p model.Port) (restored model.Port, err error) {
	restored = p
	// p is busy: its floating IPs' and forwards' rules go first.
	c.syncPortNAT(ctx, p.Name)
	if err := c.detach(ctx, backend, n, p); err != nil {
		return restored, err
	}
	fault.Point("detach-before-store-delete")
	err = c.store.DeletePort(ctx, p.Name, p.Host)
	switch {
	case errors.Is(err, store.ErrConflict):
		// Another host has a port of that name now: this host's was
		// deleted meanwhile (by a host that took this one for gone),
		// and is gone here too.
		c.log.Warn("port deleted meanwhile and made again by another host", "port", p.Name, "err", err)
		err = nil
	case err != nil:
		err = fmt.Errorf("delete port %q: %w", p.Name, err)
		c.rollback("port "+p.Name, func(ctx context.Context) (aerr error) {
			restored, aerr = backend.AttachPort(ctx, n, p)
			return aerr
		})
	}
	return restored, err
}

// removed forgets port p, which removePort has removed, and frees its
// address; mu is held.
func (c *Controller) removed(p model.Port) {
	fault.Point("detach-after-store-delete")
	c.release(p)
	delete(c.ports, p.Name)
	c.forget(p.Name)
	c.dropNATOf(p.Name)
	if c.cluster != nil {
		c.remoteChanged()
	}
}

// detach takes p off the datapath and then puts back the default route p
// displaced, if it did (link.RestoreDefaultRoute). A route that cannot be
// put back is logged and counted but fails nothing: the port is gone, and
// with it the route it had put in that one's place.
func (c *Controller) detach(ctx context.Context, b datapath.Backend, n model.Network, p model.Port) error {
	if err := b.DetachPort(ctx, n, p); err != nil {
		return err
	}
	if err := link.RestoreDefaultRoute(ctx, p); err != nil {
		c.metrics.routeRestoreFailures.Inc()
		c.log.Warn("port detached, its namespace's default route not restored", "port", p.Name, "err", err)
	}
	return nil
}

// release frees a port's address, if the port still holds it.
func (c *cache) release(p model.Port) {
	if pool, ok := c.pools[p.Network]; ok {
		pool.Release(p.IP, p.Name)
	}
}

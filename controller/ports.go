package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ovs-vnet/ovs-vnet/controller/ipam"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/fault"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Ports lists the ports, of one network when network is not empty, by name.
func (c *Controller) Ports(network string) ([]model.PortView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.networks[network]; network != "" && !ok {
		return nil, fmt.Errorf("%w: network %q", ErrNotFound, network)
	}
	views := []model.PortView{}
	for _, p := range sortedValues(c.ports, func(p model.Port) string { return p.Name }) {
		if network == "" || p.Network == network {
			views = append(views, p.View(c.networks[p.Network]))
		}
	}
	return views, nil
}

// Port returns one port.
func (c *Controller) Port(name string) (model.PortView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.ports[name]
	if !ok {
		return model.PortView{}, fmt.Errorf("%w: port %q", ErrNotFound, name)
	}
	return p.View(c.networks[p.Network]), nil
}

// PutPort creates a port and returns once it forwards, or confirms an identical
// one (created=false). On any failure nothing of the port is left: no link, no
// OVS port, no address, no record. Attaches of different ports run at once.
func (c *Controller) PutPort(ctx context.Context, name string, spec model.PortSpec) (view model.PortView, created bool, err error) {
	p, err := spec.Port(name)
	if err != nil {
		return view, false, err
	}
	c.changing.RLock()
	defer c.changing.RUnlock()
	r, view, err := c.reservePort(p)
	if err != nil || r.backend == nil {
		return view, false, err
	}
	p, n, backend := r.port, r.network, r.backend
	start := time.Now()
	attached, err := backend.AttachPort(ctx, n, p)
	rolledBack := err != nil
	if rolledBack {
		c.rollback("port "+name, func(ctx context.Context) error {
			return errors.Join(backend.DetachPort(ctx, n, p), c.store.DeletePort(name))
		})
	} else {
		c.metrics.attachDuration.Observe(time.Since(start).Seconds())
		fault.Point("attach-before-store-ofport")
		if attached != p {
			err = c.store.PutPort(attached)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	delete(c.busy, name)
	switch {
	case rolledBack:
		c.pools[n.Name].Release(p.IP)
		return view, false, err
	case err != nil:
		// Attached, but the record lacks its results: the address stays
		// held for the record, and the next reconcile completes it.
		return view, false, err
	}
	c.ports[name] = attached
	return attached.View(n), true, nil
}

// reservation is a port whose attach may go ahead: its name, address and
// interfaces are taken, its intent recorded.
type reservation struct {
	port    model.Port
	network model.Network
	backend datapath.Backend
}

// reservePort checks p and, when it is new, reserves it. When an identical
// port exists it returns no backend and that port's view.
func (c *Controller) reservePort(p model.Port) (r reservation, existing model.PortView, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.networks[p.Network]
	if !ok {
		return r, existing, fmt.Errorf("%w: network %q", ErrNotFound, p.Network)
	}
	if old, ok := c.ports[p.Name]; ok {
		if !old.SameSpec(p) {
			return r, old.View(n), fmt.Errorf("%w: port %q exists with a different spec", ErrConflict, p.Name)
		}
		return r, old.View(n), nil
	}
	if _, ok := c.busy[p.Name]; ok {
		return r, existing, fmt.Errorf("%w: port %q is being changed by another request", ErrConflict, p.Name)
	}
	if p.IP.IsValid() {
		if err := checkIP(n, p.IP); err != nil {
			return r, existing, err
		}
	}
	if p.MAC == "" {
		p.MAC = model.PortMAC(p.Name)
	}
	if err := c.checkUnique(p); err != nil {
		return r, existing, err
	}
	if err := netnsExists(p); err != nil {
		return r, existing, err
	}
	if err := c.readyLocked(); err != nil {
		return r, existing, err
	}
	if p.IP, err = c.assignIP(n, p); err != nil {
		return r, existing, err
	}
	fault.Point("attach-after-ipam")

	// Intent first: a crash from here on finds the record at restart, and the
	// reconcile either completes the port or the user deletes it — nothing is
	// orphaned, since every link and OVS port we make is named after the record.
	if err := c.store.PutPort(p); err != nil {
		c.pools[n.Name].Release(p.IP)
		return r, existing, err
	}
	fault.Point("attach-after-store-intent")
	c.busy[p.Name] = p
	return reservation{port: p, network: n, backend: c.backend}, existing, nil
}

// checkUnique refuses a port that would share an interface, or within its
// network a MAC, with an existing port or one being attached.
func (c *Controller) checkUnique(p model.Port) error {
	for _, ports := range []map[string]model.Port{c.ports, c.busy} {
		for _, o := range ports {
			if o.Name == p.Name {
				continue // a port being detached
			}
			switch {
			case o.HostIfname == p.HostIfname:
				return fmt.Errorf("%w: host interface %s is already port %q's", ErrConflict, p.HostIfname, o.Name)
			case p.Type == model.PortVeth && o.Netns == p.Netns && o.Ifname == p.Ifname:
				return fmt.Errorf("%w: netns %s already has port %q as %s", ErrConflict, p.Netns, o.Name, p.Ifname)
			case o.Network == p.Network && o.MAC == p.MAC:
				return fmt.Errorf("%w: mac %s is already used by port %q in network %q", ErrConflict, p.MAC, o.Name, p.Network)
			}
		}
	}
	return nil
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
// namespace is left alone, and a namespace or link that has already gone is fine.
func (c *Controller) DeletePort(ctx context.Context, name string) error {
	c.changing.RLock()
	defer c.changing.RUnlock()
	c.mu.Lock()
	p, ok := c.ports[name]
	_, busy := c.busy[name]
	err := c.readyLocked()
	switch {
	case !ok:
		err = fmt.Errorf("%w: port %q", ErrNotFound, name)
	case busy:
		err = fmt.Errorf("%w: port %q is being changed by another request", ErrConflict, name)
	}
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.busy[name] = p
	n, backend := c.networks[p.Network], c.backend
	c.mu.Unlock()

	err = backend.DetachPort(ctx, n, p)
	if err == nil {
		fault.Point("detach-before-store-delete")
		err = c.store.DeletePort(name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	delete(c.busy, name)
	if err != nil {
		return err
	}
	fault.Point("detach-after-store-delete")
	c.pools[p.Network].Release(p.IP)
	delete(c.ports, name)
	return nil
}

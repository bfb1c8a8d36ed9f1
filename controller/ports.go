package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ovs-vnet/ovs-vnet/controller/ipam"
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
// OVS port, no address, no record.
func (c *Controller) PutPort(ctx context.Context, name string, spec model.PortSpec) (view model.PortView, created bool, err error) {
	p, err := spec.Port(name)
	if err != nil {
		return view, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	n, ok := c.networks[p.Network]
	if !ok {
		return view, false, fmt.Errorf("%w: network %q", ErrNotFound, p.Network)
	}
	if old, ok := c.ports[name]; ok {
		if !old.SameSpec(p) {
			return old.View(n), false, fmt.Errorf("%w: port %q exists with a different spec", ErrConflict, name)
		}
		return old.View(n), false, nil
	}
	if p.IP.IsValid() {
		if err := checkIP(n, p.IP); err != nil {
			return view, false, err
		}
	}
	if p.MAC == "" {
		p.MAC = model.PortMAC(name)
	}
	if err := c.checkUnique(p); err != nil {
		return view, false, err
	}
	if err := netnsExists(p); err != nil {
		return view, false, err
	}
	if err := c.readyLocked(); err != nil {
		return view, false, err
	}
	if p.IP, err = c.assignIP(n, p); err != nil {
		return view, false, err
	}
	fault.Point("attach-after-ipam")

	// Intent first: a crash from here on finds the record at restart, and the
	// reconcile either completes the port or the user deletes it — nothing is
	// orphaned, since every link and OVS port we make is named after the record.
	if err := c.store.PutPort(p); err != nil {
		c.pools[n.Name].Release(p.IP)
		return view, false, err
	}
	fault.Point("attach-after-store-intent")
	start := time.Now()
	attached, err := c.backend.AttachPort(ctx, n, p)
	if err != nil {
		c.rollback("port "+name, func(ctx context.Context) error {
			return errors.Join(c.backend.DetachPort(ctx, n, p), c.store.DeletePort(name))
		})
		c.pools[n.Name].Release(p.IP)
		return view, false, err
	}
	c.metrics.attachDuration.Observe(time.Since(start).Seconds())
	fault.Point("attach-before-store-ofport")
	if attached != p {
		if err := c.store.PutPort(attached); err != nil {
			return view, false, err
		}
	}
	c.ports[name] = attached
	return attached.View(n), true, nil
}

// checkUnique refuses a port that would share an interface, or within its
// network a MAC, with an existing port.
func (c *Controller) checkUnique(p model.Port) error {
	for _, o := range c.ports {
		switch {
		case o.HostIfname == p.HostIfname:
			return fmt.Errorf("%w: host interface %s is already port %q's", ErrConflict, p.HostIfname, o.Name)
		case p.Type == model.PortVeth && o.Netns == p.Netns && o.Ifname == p.Ifname:
			return fmt.Errorf("%w: netns %s already has port %q as %s", ErrConflict, p.Netns, o.Name, p.Ifname)
		case o.Network == p.Network && o.MAC == p.MAC:
			return fmt.Errorf("%w: mac %s is already used by port %q in network %q", ErrConflict, p.MAC, o.Name, p.Network)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	p, ok := c.ports[name]
	if !ok {
		return fmt.Errorf("%w: port %q", ErrNotFound, name)
	}
	if err := c.readyLocked(); err != nil {
		return err
	}
	if err := c.backend.DetachPort(ctx, c.networks[p.Network], p); err != nil {
		return err
	}
	fault.Point("detach-before-store-delete")
	if err := c.store.DeletePort(name); err != nil {
		return err
	}
	fault.Point("detach-after-store-delete")
	c.pools[p.Network].Release(p.IP)
	delete(c.ports, name)
	return nil
}

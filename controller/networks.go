package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Networks lists the networks by name.
func (c *Controller) Networks() []v1.Network {
	c.mu.Lock()
	defer c.mu.Unlock()
	networks := sortedValues(c.networks, func(n model.Network) string { return n.Name })
	views := make([]v1.Network, 0, len(networks))
	for _, n := range networks {
		views = append(views, n.View())
	}
	return views
}

// Network returns one network.
func (c *Controller) Network(name string) (v1.Network, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.networks[name]
	if !ok {
		return v1.Network{}, fmt.Errorf("%w: network %q", ErrNotFound, name)
	}
	return n.View(), nil
}

// PutNetwork creates a network, confirms an identical one, or changes an
// existing one's mutable fields — dhcp, dns, domain — in place
// (created=false for both; docs/DESIGN.md §8.0, §8.4).
func (c *Controller) PutNetwork(ctx context.Context, name string, spec v1.NetworkSpec) (v1.Network, bool, error) {
	n, created, err := c.putNetwork(ctx, name, spec)
	return n.View(), created, err
}

func (c *Controller) putNetwork(ctx context.Context, name string, spec v1.NetworkSpec) (n model.Network, created bool, err error) {
	if n, err = model.NewNetwork(name, spec); err != nil {
		return n, false, err
	}
	defer c.exclusive()()
	defer c.publish()
	if old, ok := c.networks[name]; ok {
		switch {
		case old.SameSpec(n):
			return old, false, nil
		case !old.SameImmutable(n):
			return old, false, fmt.Errorf("%w: network %q exists with a different spec", ErrConflict, name)
		}
		n, err = c.changeNetwork(ctx, old, n)
		return n, false, err
	}
	if err := c.readyLocked(); err != nil {
		return n, false, err
	}
	for _, o := range c.networks {
		if o.Subnet.Overlaps(n.Subnet) {
			return n, false, fmt.Errorf("%w: subnet %s overlaps %s of network %q", ErrConflict, n.Subnet, o.Subnet, o.Name)
		}
	}
	if err := c.gatewayMACFree(name); err != nil {
		return n, false, err
	}
	// Before anything is recorded: a refusal leaves nothing to undo.
	if hc := capabilities(c.backend).HostChecker; hc != nil {
		what, err := hc.HostConflict(n)
		if err != nil {
			return n, false, fmt.Errorf("network %q: %w", name, err)
		}
		if what != "" {
			return n, false, fmt.Errorf("%w: network %q: %s", ErrConflict, name, what)
		}
	}
	// Intent first: a crash after this line converges to "network present"
	// on restart. The store checks again, against every host's writes, and
	// gives the network its ID.
	n, rev, err := c.store.CreateNetwork(ctx, n)
	if err != nil {
		return n, false, err // the store says what it was creating
	}
	c.wrote(store.KindNetwork, name, rev)
	if err := c.backend.EnsureNetwork(ctx, n); err != nil {
		c.rollback("network "+name, func(ctx context.Context) error {
			err := c.backend.DeleteNetwork(ctx, n)
			rev, serr := c.store.DeleteNetwork(ctx, name)
			c.wrote(store.KindNetwork, name, rev)
			return errors.Join(err, serr)
		})
		return n, false, err
	}
	if err := c.addNetwork(n); err != nil {
		return n, false, err
	}
	return n, true, nil
}

// changeNetwork changes network old's mutable fields to n's in place:
// the record first (a crash after it converges on n at restart), then the
// datapath, which answers DHCP from the networks it holds; its ports stay
// as they are. A refusal of the datapath puts old back in both. Both
// locks are held (exclusive).
func (c *Controller) changeNetwork(ctx context.Context, old, n model.Network) (model.Network, error) {
	if err := c.readyLocked(); err != nil {
		return old, err
	}
	n.ID = old.ID
	rev, err := c.store.UpdateNetwork(ctx, n)
	if err != nil {
		return old, err // the store says what it was updating
	}
	c.wrote(store.KindNetwork, n.Name, rev)
	if err := c.backend.EnsureNetwork(ctx, n); err != nil {
		c.rollback("network "+n.Name, func(ctx context.Context) error {
			rev, err := c.store.UpdateNetwork(ctx, old)
			c.wrote(store.KindNetwork, n.Name, rev)
			return errors.Join(err, c.backend.EnsureNetwork(ctx, old))
		})
		return old, fmt.Errorf("change network %q in place: %w", n.Name, err)
	}
	c.networks[n.Name] = n
	return n, nil
}

// gatewayMACFree refuses a new network whose gateway MACs (derived from
// its name: model.DatapathMACs) a port already has — its own network's
// other port would lose its frames to the gateway. A port may not take a
// MAC the datapath uses (claimPort); this is the same rule seen from the
// network. mu is held.
func (c *Controller) gatewayMACFree(name string) error {
	macs := c.datapathMACs()
	macs.Networks, macs.Bridge = []string{name}, ""
	for _, ports := range []map[string]model.Port{c.ports, c.busy, c.remote} {
		for _, p := range ports {
			if err := macs.Check(p.MAC); err != nil {
				return fmt.Errorf("%w: network %q: its gateway MAC is port %q's mac %s", ErrConflict, name, p.Name, p.MAC)
			}
		}
	}
	return nil
}

// DeleteNetwork removes a network that no port or router uses.
func (c *Controller) DeleteNetwork(ctx context.Context, name string) error {
	defer c.exclusive()()
	defer c.publish()
	n, ok := c.networks[name]
	if !ok {
		return fmt.Errorf("%w: network %q", ErrNotFound, name)
	}
	if err := c.networkUnused(name); err != nil {
		return err
	}
	if err := c.readyLocked(); err != nil {
		return err
	}
	if err := c.backend.DeleteNetwork(ctx, n); err != nil {
		return err
	}
	rev, err := c.store.DeleteNetwork(ctx, name)
	if err != nil {
		// The record stays (another host put a port or router on it
		// meanwhile, or the store is unreachable): so does the network.
		c.rollback("network "+name, func(ctx context.Context) error { return c.backend.EnsureNetwork(ctx, n) })
		return fmt.Errorf("delete network %q: %w", name, err)
	}
	c.wrote(store.KindNetwork, name, rev)
	delete(c.networks, name)
	delete(c.pools, name)
	return nil
}

// networkUnused refuses to let a network go while ports sit on it or routers
// join it, naming them so the client knows what to delete first.
func (c *Controller) networkUnused(name string) error {
	var ports []string
	for _, p := range c.ports {
		if p.Network == name {
			ports = append(ports, p.Name)
		}
	}
	slices.Sort(ports)
	var users []string
	if len(ports) > 0 {
		users = append(users, "ports "+strings.Join(ports, ", "))
	}
	if routers := c.routersOf(name); len(routers) > 0 {
		users = append(users, "routers "+strings.Join(routers, ", "))
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: network %q is used by %s", ErrConflict, name, strings.Join(users, " and "))
	}
	return nil
}

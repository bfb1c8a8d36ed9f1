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

// Routers lists the routers by name.
func (c *Controller) Routers() []v1.Router {
	c.mu.Lock()
	defer c.mu.Unlock()
	routers := sortedValues(c.routers, func(r model.Router) string { return r.Name })
	views := make([]v1.Router, 0, len(routers))
	for _, r := range routers {
		views = append(views, cloneRouter(r).View())
	}
	return views
}

// Router returns one router.
func (c *Controller) Router(name string) (v1.Router, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.routers[name]
	if !ok {
		return v1.Router{}, fmt.Errorf("%w: router %q", ErrNotFound, name)
	}
	return cloneRouter(r).View(), nil
}

// cloneRouter copies the network list so that a caller cannot change the
// desired state through the slice it was handed.
func cloneRouter(r model.Router) model.Router {
	r.Networks = slices.Clone(r.Networks)
	return r
}

// PutRouter creates a router, confirms an identical one, or replaces one that
// joins other networks (created=false for both). Replacing in place is safe
// because a router holds no allocations: nothing a port was given depends on it.
// On any failure the previous state is restored: no router, or the old one.
func (c *Controller) PutRouter(ctx context.Context, name string, spec v1.RouterSpec) (v1.Router, bool, error) {
	r, created, err := c.putRouter(ctx, name, spec)
	return r.View(), created, err
}

func (c *Controller) putRouter(ctx context.Context, name string, spec v1.RouterSpec) (r model.Router, created bool, err error) {
	if r, err = model.NewRouter(name, spec); err != nil {
		return r, false, err
	}
	defer c.exclusive()()
	defer c.publish()
	if err := c.networksExist(r.Networks); err != nil {
		return r, false, err
	}
	old, exists := c.routers[name]
	if exists && old.SameSpec(r) {
		return cloneRouter(old), false, nil
	}
	if err := c.readyLocked(); err != nil {
		return r, false, err
	}
	if exists {
		r, err = c.replaceRouter(ctx, old, r)
		return r, false, err
	}
	r, err = c.createRouter(ctx, r)
	return r, err == nil, err
}

// networksExist names every listed network that is not in the desired state.
func (c *cache) networksExist(names []string) error {
	var missing []string
	for _, n := range names {
		if _, ok := c.networks[n]; !ok {
			missing = append(missing, fmt.Sprintf("%q", n))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: network %s", ErrNotFound, strings.Join(missing, ", "))
	}
	return nil
}

// createRouter stores r, which gets its ID from the store, and makes it real.
func (c *Controller) createRouter(ctx context.Context, r model.Router) (model.Router, error) {
	// Intent first: a crash after this line converges to "router present" on restart.
	r, rev, err := c.store.PutRouter(ctx, r)
	if err != nil {
		return r, fmt.Errorf("create router %q: %w", r.Name, err)
	}
	c.wrote(store.KindRouter, r.Name, rev)
	if err := c.backend.EnsureRouter(ctx, r); err != nil {
		c.rollback("router "+r.Name, func(ctx context.Context) error {
			err := c.backend.DeleteRouter(ctx, r)
			rev, serr := c.store.DeleteRouter(ctx, r.Name)
			c.wrote(store.KindRouter, r.Name, rev)
			return errors.Join(err, serr)
		})
		return r, fmt.Errorf("create router %q: %w", r.Name, err)
	}
	c.setRouter(r)
	return r, nil
}

func (c *Controller) replaceRouter(ctx context.Context, old, r model.Router) (model.Router, error) {
	r, rev, err := c.store.PutRouter(ctx, r)
	if err != nil {
		return r, fmt.Errorf("replace router %q: %w", r.Name, err)
	}
	c.wrote(store.KindRouter, r.Name, rev)
	if err := c.backend.EnsureRouter(ctx, r); err != nil {
		// EnsureRouter replaces whatever the same name set up, so ensuring the
		// old router again undoes a half-applied new one.
		c.rollback("router "+r.Name, func(ctx context.Context) error {
			_, rev, err := c.store.PutRouter(ctx, old)
			c.wrote(store.KindRouter, r.Name, rev)
			return errors.Join(c.backend.EnsureRouter(ctx, old), err)
		})
		return r, fmt.Errorf("replace router %q: %w", r.Name, err)
	}
	c.setRouter(r)
	return r, nil
}

// DeleteRouter removes a router; its networks stay and stop routing to each
// other (unless another router joins them).
func (c *Controller) DeleteRouter(ctx context.Context, name string) error {
	defer c.exclusive()()
	defer c.publish()
	r, ok := c.routers[name]
	if !ok {
		return fmt.Errorf("%w: router %q", ErrNotFound, name)
	}
	if err := c.readyLocked(); err != nil {
		return err
	}
	if err := c.backend.DeleteRouter(ctx, r); err != nil {
		return fmt.Errorf("delete router %q: %w", name, err)
	}
	rev, err := c.store.DeleteRouter(ctx, name)
	if err != nil {
		// The record stays: so does the router.
		c.rollback("router "+name, func(ctx context.Context) error { return c.backend.EnsureRouter(ctx, r) })
		return fmt.Errorf("delete router %q: %w", name, err)
	}
	c.wrote(store.KindRouter, name, rev)
	delete(c.routers, name)
	c.peersChanged()
	return nil
}

// setRouter records a router made real; mu is held.
func (c *Controller) setRouter(r model.Router) {
	c.routers[r.Name] = r
	c.peersChanged()
}

// peersChanged tells a cluster host that the networks its ports need may
// have changed with a router.
func (c *Controller) peersChanged() {
	if c.cluster != nil {
		c.remoteChanged()
	}
}

// routersOf lists, sorted, the routers that join network.
func (c *Controller) routersOf(network string) []string {
	var names []string
	for _, r := range c.routers {
		if r.Joins(network) {
			names = append(names, r.Name)
		}
	}
	slices.Sort(names)
	return names
}

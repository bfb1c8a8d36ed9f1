package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// maxRouters is the number of router IDs. Backends name a router's datapath
// state after its ID, so the range is kept as small as the networks' one.
const maxRouters = 4094

// Routers lists the routers by name.
func (c *Controller) Routers() []model.Router {
	c.mu.Lock()
	defer c.mu.Unlock()
	routers := sortedValues(c.routers, func(r model.Router) string { return r.Name })
	for i := range routers {
		routers[i] = cloneRouter(routers[i])
	}
	return routers
}

// Router returns one router.
func (c *Controller) Router(name string) (model.Router, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.routers[name]
	if !ok {
		return r, fmt.Errorf("%w: router %q", ErrNotFound, name)
	}
	return cloneRouter(r), nil
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
func (c *Controller) PutRouter(ctx context.Context, name string, spec model.RouterSpec) (r model.Router, created bool, err error) {
	if r, err = spec.Router(name); err != nil {
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
		r.ID = old.ID
		return r, false, c.replaceRouter(ctx, old, r)
	}
	if r.ID, err = c.freeRouterID(); err != nil {
		return r, false, err
	}
	return r, true, c.createRouter(ctx, r)
}

// networksExist names every listed network that is not in the desired state.
func (c *Controller) networksExist(names []string) error {
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

func (c *Controller) createRouter(ctx context.Context, r model.Router) error {
	// Intent first: a crash after this line converges to "router present" on restart.
	if err := c.store.PutRouter(ctx, r); err != nil {
		return fmt.Errorf("create router %q: %w", r.Name, err)
	}
	if err := c.backend.EnsureRouter(ctx, r); err != nil {
		c.rollback("router "+r.Name, func(ctx context.Context) error {
			return errors.Join(c.backend.DeleteRouter(ctx, r), c.store.DeleteRouter(ctx, r.Name))
		})
		return fmt.Errorf("create router %q: %w", r.Name, err)
	}
	c.routers[r.Name] = r
	return nil
}

func (c *Controller) replaceRouter(ctx context.Context, old, r model.Router) error {
	if err := c.store.PutRouter(ctx, r); err != nil {
		return fmt.Errorf("replace router %q: %w", r.Name, err)
	}
	if err := c.backend.EnsureRouter(ctx, r); err != nil {
		// EnsureRouter replaces whatever the same name set up, so ensuring the
		// old router again undoes a half-applied new one.
		c.rollback("router "+r.Name, func(ctx context.Context) error {
			return errors.Join(c.backend.EnsureRouter(ctx, old), c.store.PutRouter(ctx, old))
		})
		return fmt.Errorf("replace router %q: %w", r.Name, err)
	}
	c.routers[r.Name] = r
	return nil
}

func (c *Controller) freeRouterID() (int, error) {
	used := map[int]bool{}
	for _, r := range c.routers {
		used[r.ID] = true
	}
	for id := 1; id <= maxRouters; id++ {
		if !used[id] {
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: all %d router ids are in use", ErrConflict, maxRouters)
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
	if err := c.store.DeleteRouter(ctx, name); err != nil {
		return fmt.Errorf("delete router %q: %w", name, err)
	}
	delete(c.routers, name)
	return nil
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

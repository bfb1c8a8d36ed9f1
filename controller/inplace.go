package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// A port's security groups change in place (docs/DESIGN.md §8.0): no
// detach, no attach, only its record and the policy; and a port that
// listed groups leaves the policy.

// claimInPlace reserves the change of port old's mutable fields to those
// of the spec — its security groups — which needs no attach: the port is
// busy until changeInPlace is done. mu is held.
func (c *Controller) claimInPlace(n model.Network, old model.Port, groups model.GroupList) (reservation, error) {
	if _, ok := c.busy[old.Name]; ok {
		return reservation{}, fmt.Errorf("%w: port %q is being changed by another request", ErrConflict, old.Name)
	}
	if err := c.readyLocked(); err != nil {
		return reservation{}, err
	}
	if groups != "" && capabilities(c.backend).Policy == nil {
		return reservation{}, unenforced(c.backend)
	}
	p := old
	p.SecurityGroups = groups
	c.busy[p.Name] = old
	return reservation{port: p, network: n, backend: c.backend, was: &old}, nil
}

// changeInPlace applies a change claimInPlace reserved: the record first
// (the store checks that the groups exist, against every host's writes),
// then the policy, with no detach and no link touched — traffic the new
// groups still allow never stops. A refusal puts the old port back.
func (c *Controller) changeInPlace(ctx context.Context, r reservation) (v1.Port, error) {
	p, old := r.port, *r.was
	err := c.store.UpdatePort(ctx, p)
	if err == nil {
		c.setPort(p)
		if err = c.syncPolicy(ctx); err != nil {
			c.rollback("port "+p.Name, func(ctx context.Context) error {
				c.setPort(old)
				return errors.Join(c.store.UpdatePort(ctx, old), c.syncPolicy(ctx))
			})
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	delete(c.busy, p.Name)
	if err != nil {
		return v1.Port{}, fmt.Errorf("change port %q in place: %w", p.Name, err)
	}
	return c.view(p), nil
}

func (c *Controller) setPort(p model.Port) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ports[p.Name] = p
}

// leaveBeforeRelease hands over the policy without port p, which listed
// groups and is gone (detached and its record deleted, or its attach
// rolled back), while p's address is still held: a port given the
// address next must not be a member of p's groups until that policy
// lands. p stays busy, without groups — out of the policy, its name and
// address still taken — for the caller to release under mu.
func (c *Controller) leaveBeforeRelease(p model.Port) {
	if p.SecurityGroups == "" {
		return
	}
	c.mu.Lock()
	delete(c.ports, p.Name)
	gone := p
	gone.SecurityGroups = ""
	c.busy[p.Name] = gone
	c.mu.Unlock()
	c.leavePolicy(p)
}

// leavePolicy hands over the policy without a port that listed groups and
// is gone (deleted, its record refused, or its attach rolled back). The
// port's change is done whatever comes of it, so a refusal is retried in
// the background.
func (c *Controller) leavePolicy(p model.Port) {
	if p.SecurityGroups == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	c.retryPolicy(ctx)
}

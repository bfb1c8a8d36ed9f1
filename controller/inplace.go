package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// A port's security groups and configure change in place (docs/DESIGN.md
// §8.0, §8.4): no detach, no new link, only its record, the policy and,
// for configure, an attach of the port as it now is; and a port that
// listed groups leaves the policy.

// claimInPlace reserves the change of port old's mutable fields to those
// of q — its security groups, configure — which needs no detach: the port
// is busy until changeInPlace is done. mu is held.
func (c *Controller) claimInPlace(n model.Network, old, q model.Port) (reservation, error) {
	if _, ok := c.busy[old.Name]; ok {
		return reservation{}, fmt.Errorf("%w: port %q is being changed by another request", ErrConflict, old.Name)
	}
	if err := c.readyLocked(); err != nil {
		return reservation{}, err
	}
	if q.SecurityGroups != "" && capabilities(c.backend).Policy == nil {
		return reservation{}, unenforced(c.backend)
	}
	p := old
	p.SecurityGroups, p.NoConfigure = q.SecurityGroups, q.NoConfigure
	c.busy[p.Name] = old
	return reservation{port: p, network: n, backend: c.backend, was: &old}, nil
}

// changeInPlace applies a change claimInPlace reserved: the record first
// (the store checks that the groups exist, against every host's writes;
// a crash after it converges on the new spec at restart), then the
// datapath (applyInPlace), with no detach and no new link — traffic the
// port may still send never stops. A refusal puts the old port back.
func (c *Controller) changeInPlace(ctx context.Context, r reservation) (v1.Port, error) {
	p, old := r.port, *r.was
	err := c.store.UpdatePort(ctx, p)
	if err == nil {
		c.setPort(p)
		if p, err = c.applyInPlace(ctx, r, old, p); err != nil {
			c.rollback("port "+p.Name, func(ctx context.Context) error {
				c.setPort(old)
				_, err := c.applyInPlace(ctx, r, p, old)
				return errors.Join(c.store.UpdatePort(ctx, old), err)
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
	c.ports[p.Name] = p
	return c.view(p), nil
}

// applyInPlace makes the datapath hold port p where it held was: the
// policy with p's groups, and for a flipped configure an attach, which
// makes the namespace end what the flag says (link.EnsurePort: addressed
// and routed, or left as it is) on the link it has — the attach is the
// repair path, and detaches nothing. It returns p as attached, its
// record updated where the attach changed it (a repaired port's ofport).
func (c *Controller) applyInPlace(ctx context.Context, r reservation, was, p model.Port) (model.Port, error) {
	if was.SecurityGroups != p.SecurityGroups {
		if err := c.syncPolicy(ctx); err != nil {
			return p, err
		}
	}
	if was.NoConfigure == p.NoConfigure {
		return p, nil
	}
	got, err := r.backend.AttachPort(ctx, r.network, p)
	if err != nil {
		return p, err
	}
	if got != p {
		err = c.store.UpdatePort(ctx, got)
	}
	return got, err
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

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

// Security groups (docs/DESIGN.md §8.1) are the cluster's objects, like
// networks; ports list them. The backend enforces one model.Policy that
// the controller computes from the whole desired state (policyLocked) and
// hands over after every change that may alter it (syncPolicy): the
// backend sends only what differs.

// SecurityGroups lists the security groups by name.
func (c *Controller) SecurityGroups() []v1.SecurityGroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	views := make([]v1.SecurityGroup, 0, len(c.groups))
	for _, g := range sortedValues(c.groups, func(g model.SecurityGroup) string { return g.Name }) {
		views = append(views, c.groupView(g))
	}
	return views
}

// SecurityGroup returns one security group; with stats, also its rules'
// counters on this host.
func (c *Controller) SecurityGroup(ctx context.Context, name string, stats bool) (v1.SecurityGroup, error) {
	c.mu.Lock()
	g, ok := c.groups[name]
	var v v1.SecurityGroup
	if ok {
		v = c.groupView(g)
	}
	c.mu.Unlock()
	if !ok {
		return v, fmt.Errorf("%w: security group %q", ErrNotFound, name)
	}
	if !stats {
		return v, nil
	}
	s, err := c.PolicyStats(ctx)
	if err != nil {
		return v1.SecurityGroup{}, err
	}
	v.Hits = []v1.RuleHits{}
	for _, r := range s.Rules {
		if r.Group == name && r.Index < len(v.Rules) {
			v.Hits = append(v.Hits, v1.RuleHits{Rule: r.Index, Packets: r.Packets, Bytes: r.Bytes})
		}
	}
	slices.SortFunc(v.Hits, func(a, b v1.RuleHits) int { return a.Rule - b.Rule })
	return v, nil
}

// PolicyStats returns the security groups' counters of the backend (for
// the exporter, and the groups' hits).
func (c *Controller) PolicyStats(ctx context.Context) (datapath.PolicyStats, error) {
	st := c.status()
	if st.backend == nil {
		return datapath.PolicyStats{}, fmt.Errorf("%w: %s", ErrNotReady, st.notReady)
	}
	pe := capabilities(st.backend).Policy
	if pe == nil {
		return datapath.PolicyStats{}, unenforced(st.backend)
	}
	return pe.PolicyStats(ctx)
}

func unenforced(b datapath.Backend) error {
	err := fmt.Errorf("%w: the %s backend does not enforce security groups", ErrUnsupported, b.Info().Backend)
	if why := capabilities(b).NoPolicy; why != "" {
		return fmt.Errorf("%w: %s", err, why)
	}
	return err
}

// groupsExist names the first listed security group that is not in the
// desired state.
func (c *cache) groupsExist(names []string) error {
	for _, g := range names {
		if _, ok := c.groups[g]; !ok {
			return fmt.Errorf("%w: security group %q", ErrNotFound, g)
		}
	}
	return nil
}

// groupView renders a group with the ports (of every host) that list it
// and the groups that name it; mu is held.
func (c *Controller) groupView(g model.SecurityGroup) v1.SecurityGroup {
	var ports, referencedBy []string
	for _, m := range []map[string]model.Port{c.ports, c.remote} {
		for _, p := range m {
			if p.SecurityGroups.Has(g.Name) {
				ports = append(ports, p.Name)
			}
		}
	}
	for _, o := range c.groups {
		if slices.Contains(o.References(), g.Name) {
			referencedBy = append(referencedBy, o.Name)
		}
	}
	slices.Sort(ports)
	slices.Sort(referencedBy)
	return g.View(ports, referencedBy)
}

// PutSecurityGroup creates a security group, confirms an identical one, or
// replaces one's rules (created=false for both), which applies to the
// ports that list it at once. On any failure the previous state is
// restored: no group, or the old one — as the store had them, which in a
// cluster may be a group this host has not heard of yet.
func (c *Controller) PutSecurityGroup(ctx context.Context, name string, spec v1.SecurityGroupSpec) (v1.SecurityGroup, bool, error) {
	g, err := model.NewSecurityGroup(name, spec)
	if err != nil {
		return v1.SecurityGroup{}, false, err
	}
	defer c.exclusive()()
	defer c.publish()
	if old, ok := c.groups[name]; ok && old.SameSpec(g) {
		return c.groupView(old), false, nil
	}
	if err := c.readyLocked(); err != nil {
		return v1.SecurityGroup{}, false, err
	}
	if capabilities(c.backend).Policy == nil {
		// Stored, the group would promise a filter nothing enforces.
		return v1.SecurityGroup{}, false, unenforced(c.backend)
	}
	// Intent first, as for every object: the store checks the
	// references (against every host's writes), gives the ID, and says
	// what it replaced.
	g, was, rev, err := c.store.PutSecurityGroup(ctx, g)
	if err != nil {
		return v1.SecurityGroup{}, false, err // the store says what it was storing
	}
	c.wrote(store.KindSecurityGroup, name, rev)
	c.groups[name] = g
	if err := c.enforceLocked(ctx); err != nil {
		c.rollback("security group "+name, func(ctx context.Context) error {
			return c.restoreGroup(ctx, name, was)
		})
		return v1.SecurityGroup{}, false, fmt.Errorf("enforce security group %q: %w", name, err)
	}
	return c.groupView(g), was.ID == 0, nil
}

// DeleteSecurityGroup removes a security group that no port lists and no
// other group's rule names.
func (c *Controller) DeleteSecurityGroup(ctx context.Context, name string) error {
	defer c.exclusive()()
	defer c.publish()
	if _, ok := c.groups[name]; !ok {
		return fmt.Errorf("%w: security group %q", ErrNotFound, name)
	}
	if err := c.readyLocked(); err != nil {
		return err
	}
	// The store decides whether the group is in use: it sees every
	// host's ports, also those this host has not heard of yet.
	rev, err := c.store.DeleteSecurityGroup(ctx, name)
	if err != nil {
		return err
	}
	c.wrote(store.KindSecurityGroup, name, rev)
	delete(c.groups, name)
	// Done whatever the backend says, and never undone: stored again,
	// the group could come back under another ID. The store found it
	// unused, so the rules a refusing backend keeps of it match no
	// port's traffic; the policy without it is retried in the
	// background, as for a port that is gone.
	if err := c.enforceLocked(ctx); err != nil {
		c.log.Warn("security group deleted; the datapath refused the policy without it, retrying", "group", name, "err", err)
		c.policyChanged()
	}
	return nil
}

// restoreGroup undoes a group PUT that the backend refused: the group it
// replaced stored again, under its ID, or, when it replaced none (ID 0),
// the new one deleted; then the policy of the restored state is handed
// over. The cache follows the store: what the store did not undo
// stays, for the next reconcile. Both locks are held.
func (c *Controller) restoreGroup(ctx context.Context, name string, was model.SecurityGroup) error {
	var rev int64
	var err error
	if was.ID != 0 {
		if was, _, rev, err = c.store.PutSecurityGroup(ctx, was); err == nil {
			c.groups[name] = was
		}
	} else if rev, err = c.store.DeleteSecurityGroup(ctx, name); err == nil {
		delete(c.groups, name)
	}
	c.wrote(store.KindSecurityGroup, name, rev)
	return errors.Join(err, c.enforceLocked(ctx))
}

// policyLocked is the policy of the desired state; mu is held. Its ports
// are this host's, those being attached too (busy, not yet in ports): a
// port's rules are in place before it forwards. Its members are every
// host's ports: an address is unique in the cluster, whatever network.
func (c *Controller) policyLocked() model.Policy {
	p := model.Policy{Groups: maps.Clone(c.groups), Ports: map[string]model.GroupList{}, Members: map[string][]netip.Addr{}}
	local := maps.Clone(c.ports)
	for name, b := range c.busy {
		if _, ok := local[name]; !ok && c.isLocal(b) {
			local[name] = b
		}
	}
	for _, m := range []map[string]model.Port{local, c.remote} {
		for _, port := range m {
			// A port keeps its whole list even while a group of it is
			// not in this host's cache (made on another host moments
			// ago, or a claimed port's group its record's write will
			// refuse): a group the policy lacks allows nothing and
			// limits egress (model.Policy), so the port fails closed
			// until the group arrives, instead of going unguarded.
			if port.SecurityGroups == "" {
				continue
			}
			if c.isLocal(port) {
				p.Ports[port.Name] = port.SecurityGroups
			}
			for _, g := range port.SecurityGroups.Names() {
				p.Members[g] = append(p.Members[g], port.IP)
			}
		}
	}
	for g, addrs := range p.Members {
		slices.SortFunc(addrs, netip.Addr.Compare)
		p.Members[g] = slices.Compact(addrs)
	}
	return p
}

// enforceLocked hands the backend the policy of the desired state; both
// locks are held (exclusive), so no syncPolicy runs meanwhile.
func (c *Controller) enforceLocked(ctx context.Context) error {
	pe := capabilities(c.backend).Policy
	if pe == nil {
		return nil
	}
	return pe.SetPolicy(ctx, c.policyLocked())
}

// syncPolicy hands the backend the policy of the desired state, for a
// change that holds changing shared: attaches and detaches of ports that
// list groups, a port's groups changed in place, other hosts' ports.
// policyMu makes the last to hand over the last to have computed, so the
// backend is left with the latest policy.
func (c *Controller) syncPolicy(ctx context.Context) error {
	c.policyMu.Lock()
	defer c.policyMu.Unlock()
	c.mu.Lock()
	pe, p := capabilities(c.backend).Policy, c.policyLocked()
	c.mu.Unlock()
	if pe == nil {
		return nil
	}
	if err := pe.SetPolicy(ctx, p); err != nil {
		return fmt.Errorf("hand the security groups' policy to the datapath: %w", err)
	}
	return nil
}

// policyChanged asks the loop on policyDirty (retryPolicy) to hand the
// policy over again: after a change whose request could not wait for it
// (another host's port) or must not fail for it (a port already gone).
func (c *Controller) policyChanged() { wake(c.policyDirty) }

// retryPolicy is syncPolicy for the loop on policyDirty, which has no
// request to fail: a refusal is tried again after a pause.
func (c *Controller) retryPolicy(ctx context.Context) {
	if err := c.syncPolicy(ctx); err != nil {
		c.log.Error("security groups not enforced as they are; retrying", "err", err)
		time.AfterFunc(syncRetry, c.policyChanged)
	}
}

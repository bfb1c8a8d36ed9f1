package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/nsfile"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// A port with ReleaseWithNetns (every port the CNI plugin makes) lives and
// dies with its namespace, so that a DEL the runtime could not deliver —
// the daemon was down, and podman 4.3 never sends GC — leaks neither the
// port nor its address (docs/CNI.md):
//   - a PUT of its name whose namespace end has left is a new port: once
//     the new port passes every check, the old one is released and the
//     new one attached (judgeLeft, replace);
//   - the watcher releases it once its namespace has been gone for the
//     grace period (releaseGone).
// A port without it stays until it is deleted, as it always has.

// WithNetnsGrace releases, after grace of their namespace gone, the ports
// that ask for it (--netns-grace); without it, or with 0, none is.
func WithNetnsGrace(grace time.Duration) Option {
	return func(c *Controller) { c.netnsGrace = grace }
}

// releaseReasons are why the daemon releases a port on its own, for the
// metrics to show each one (ovs_vnet_ports_released_total).
func releaseReasons() []string {
	return []string{ReasonNetnsGone}
}

// leftPort is a port whose namespace end has left, and why (netnsLeft).
type leftPort struct {
	port model.Port
	why  error
}

// judgeLeft returns this host's port of p's name when p asks for
// ReleaseWithNetns, differs from it (nor only upgrades it: UpgradedBy),
// and the port's namespace end has left (netnsLeft): what was there is
// gone, and the request is a new port — the container's next start after
// a missed DEL. Whether the old port asked for the release does not count:
// a port of an older plugin is replaced too. claimPort judges p as if the
// old port were not there and, if p passes, replace releases it; a p that
// is refused (its own namespace, its address, an interface) replaces
// nothing. It looks at namespaces, so takes no lock for that; changing is
// held shared.
func (c *Controller) judgeLeft(ctx context.Context, p model.Port) *leftPort {
	if !p.ReleaseWithNetns {
		return nil
	}
	c.mu.Lock()
	old, ok := c.ports[p.Name]
	n, pc := c.networks[old.Network], capabilities(c.backend).PortChecker
	seen, seenOK := c.netnsIDs[p.Name]
	if c.cluster == nil {
		p.Host = old.Host // as claimPort: a single host's records name none
	}
	c.mu.Unlock()
	if !ok || old.Type != v1.PortVeth || old.SameSpec(p) {
		return nil
	}
	if _, up := old.UpgradedBy(p); up {
		return nil
	}
	var seenIn *nsfile.ID
	if seenOK {
		seenIn = &seen
	}
	if why := c.netnsLeft(ctx, pc, n, old, seenIn); why != nil {
		return &leftPort{port: old, why: why}
	}
	return nil
}

// replace releases r.replaces, as a DELETE would, for r's port, which
// claimPort has reserved. The old port's address is freed unless the new
// one has it (the same name holds it in the pool); when the old port
// cannot be released it stays and r's reservation is undone.
func (c *Controller) replace(ctx context.Context, r reservation) error {
	old := r.replaces.port
	c.mu.Lock()
	n := c.networks[old.Network]
	c.mu.Unlock()
	restored, err := c.removePort(ctx, r.backend, n, old)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.publish()
	kept := r.port
	if old.Network == kept.Network && old.IP == kept.IP {
		// One address, held in the pool by the one name: it stays.
		old.IP, kept.IP = netip.Addr{}, netip.Addr{}
	}
	if err != nil {
		delete(c.busy, kept.Name)
		c.release(kept)
		c.ports[old.Name] = restored
		c.natChanged() // its rules went with the try
		return fmt.Errorf("replace port %q, whose namespace has left: %w", old.Name, err)
	}
	c.removed(old)
	c.log.Info("port released for a new one of its name: its namespace has left", "port", old.Name, "netns", old.Netns, "new_netns", r.port.Netns, "why", r.replaces.why)
	return nil
}

// upgradePort stores p, the record of a port made by an older CNI plugin
// with what the new plugin asks for (model.Port.UpgradedBy), which
// claimPort has made busy. The datapath is not touched: a default route
// the old port set stays where NoDefaultRoute is now asked for.
func (c *Controller) upgradePort(ctx context.Context, p model.Port) (v1.Port, error) {
	err := c.store.UpdatePort(ctx, p)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.busy, p.Name)
	if err != nil {
		return v1.Port{}, fmt.Errorf("upgrade port %q: %w", p.Name, err)
	}
	c.ports[p.Name] = p
	c.log.Info("port record upgraded for a newer CNI plugin", "port", p.Name, "release_with_netns", p.ReleaseWithNetns, "no_default_route", p.NoDefaultRoute)
	return c.view(p), nil
}

// netnsLeft tells why veth port p's namespace end has left, or nil while
// it may still be there: its path names no namespace (gone, or made into
// something else), or a /proc path names another namespace than the one
// p was seen in (procNetns; seenIn nil when it never was), or the
// namespace there holds no interface of p's (datapath.ErrNoNetns or
// ErrLinkGone from pc, nil without a checker). A namespace under
// /var/run/netns made again under the same name so counts as left as
// long as it lacks the port's interface — its container is elsewhere now —
// although the watcher would make the port again in it (drift.go). What
// cannot be told (a path that hangs, a check that fails) is not left: the
// request is then refused as a conflict, and the port stays.
func (c *Controller) netnsLeft(ctx context.Context, pc datapath.PortChecker, n model.Network, p model.Port, seenIn *nsfile.ID) error {
	id, err := c.netnsID(ctx, p.NetnsPath())
	switch {
	case errors.Is(err, datapath.ErrNoNetns) || errors.Is(err, v1.ErrInvalid):
		return err
	case err != nil:
		return nil
	case procNetns(p) && seenIn != nil && *seenIn != id:
		return fmt.Errorf("%w: netns %s is not the namespace port %q was seen in: its process has gone", datapath.ErrNoNetns, p.NetnsPath(), p.Name)
	case pc == nil:
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := pc.CheckPort(cctx, n, p, datapath.CheckAll); errors.Is(err, datapath.ErrNoNetns) || errors.Is(err, datapath.ErrLinkGone) {
		return err
	}
	return nil
}

// releaseGone releases this host's port name, as a DELETE would, once it
// asks for ReleaseWithNetns and its namespace has been gone (the watcher
// keeps it down with ReasonNetnsGone) for the grace period; changing is
// held shared. The clock is the port's fault's: a namespace back, or a
// port forwarding again, resets it; a daemon restart starts it again
// (the start-up reconcile finds the namespace gone), so the port goes
// about one grace period after the start — not stored, it is lost with
// the process, but never so that the port stays. A release that fails is
// tried again at the port's next check.
func (c *Controller) releaseGone(ctx context.Context, name string) {
	c.mu.Lock()
	p, ok := c.ports[name]
	f := c.faults[name]
	var gone time.Duration
	if ok && f != nil && f.reason == ReasonNetnsGone {
		gone = time.Since(f.since)
	}
	due := p.ReleaseWithNetns && c.netnsGrace > 0 && gone >= c.netnsGrace
	c.mu.Unlock()
	if !due {
		return
	}
	if err := c.deletePort(ctx, name, &p); err != nil {
		c.log.Warn("port whose namespace is gone not released", "port", name, "netns", p.Netns, "err", err)
		return
	}
	c.metrics.released.WithLabelValues(ReasonNetnsGone).Inc()
	c.log.Info("port released: its namespace is gone", "port", name, "netns", p.Netns, "gone_for", gone.Round(time.Millisecond))
}

package controller

import (
	"context"
	"errors"
	"fmt"
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
//   - a PUT of its name whose namespace end has left is a new port: the
//     old one is released and the new one attached (replaceLeft);
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

// replaceLeft releases this host's port of p's name when p asks for
// ReleaseWithNetns, differs from it, and the port's namespace end has left
// (netnsLeft): what was there is gone, and the request is a new port —
// the container's next start after a missed DEL. Whether the old port
// asked for the release does not count: a port of an older plugin is
// replaced too. A new port whose own namespace is refused (netnsErr)
// replaces nothing: the request fails with that, and changes nothing.
// changing is held shared; in any other case the port is left for
// claimPort to judge.
func (c *Controller) replaceLeft(ctx context.Context, p model.Port, netnsErr error) error {
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
	var seenIn *nsfile.ID
	if seenOK {
		seenIn = &seen
	}
	left := c.netnsLeft(ctx, pc, n, old, seenIn)
	switch {
	case left == nil:
		return nil
	case netnsErr != nil:
		return netnsErr
	}
	err := c.deletePort(ctx, p.Name, &old)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil // deleted meanwhile
	case err != nil:
		return fmt.Errorf("replace port %q, whose namespace has left: %w", p.Name, err)
	}
	c.log.Info("port released for a new one of its name: its namespace has left", "port", p.Name, "netns", old.Netns, "new_netns", p.Netns, "why", left)
	return nil
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

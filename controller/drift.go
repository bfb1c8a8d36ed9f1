package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/nsfile"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Drift is a port that was attached and no longer forwards because
// something changed under the daemon: a link deleted by hand, a namespace
// deleted or made again, an interface the switch lost. The backend tells
// (datapath.PortChecker); the controller marks the port down, so that GET
// shows it at once, and attaches it again, which repairs what the check
// found.

// Why a port of this host is down (v1.Port.StatusReason; docs/API.md).
// They are an API: a name, once given, keeps its meaning.
const (
	ReasonLinkGone     = "link_gone"     // its host link or namespace end is missing
	ReasonNetnsGone    = "netns_gone"    // its namespace does not exist
	ReasonNotBound     = "not_bound"     // the switch does not carry its link
	ReasonAttachFailed = "attach_failed" // an attach failed for another cause
)

// faultReasons are all the reasons, for the metrics to show each one.
func faultReasons() []string {
	return []string{ReasonLinkGone, ReasonNetnsGone, ReasonNotBound, ReasonAttachFailed}
}

// reasonOf names why err says a port does not forward, or gives fallback
// when err names none of the backends' sentinels.
func reasonOf(err error, fallback string) string {
	switch {
	case errors.Is(err, datapath.ErrNoNetns):
		return ReasonNetnsGone
	case errors.Is(err, datapath.ErrLinkGone):
		return ReasonLinkGone
	case errors.Is(err, datapath.ErrNotBound):
		return ReasonNotBound
	}
	return fallback
}

const (
	// sweepInterval is how often every port is checked with no signal:
	// a safety net for a change that raises no event.
	sweepInterval = 30 * time.Second
	// retryTick is how often the watcher looks for down ports due for
	// another try. A namespace made again raises no event in the
	// daemon's namespace, so these tries are what bring its port back.
	retryTick = 500 * time.Millisecond
	// A failed repair is tried again after retryMin, doubling up to
	// retryMax, so that a port that cannot be attached does not keep the
	// datapath busy. A port whose namespace is gone is only looked at
	// (no attach until it is back), which costs a stat: netnsRetryMax
	// keeps its return within a few seconds.
	retryMin      = 500 * time.Millisecond
	retryMax      = 30 * time.Second
	netnsRetryMax = time.Second
	// signalGap is the least time between two rounds for signals.
	signalGap = 500 * time.Millisecond
	// checkTimeout bounds one CheckPort, repairTimeout one repair (as a
	// request's attach).
	checkTimeout  = 10 * time.Second
	repairTimeout = DatapathTimeout
)

// portFault is why a port of this host does not forward, and when the
// watcher tries it again.
type portFault struct {
	reason, detail string
	failures       int // tries in a row that left it down
	retryAt        time.Time
	since          time.Time // when it went down for reason (release.go's clock)
}

// down records that port name does not forward, for reason, and when to
// try again; mu is held.
func (c *Controller) down(name, reason string, cause error) {
	f := c.faults[name]
	if f == nil {
		f = &portFault{}
		c.faults[name] = f
	}
	if f.reason != reason {
		f.failures = 0 // a new fault: a namespace back, and its link to make
		f.since = time.Now()
	}
	f.reason, f.detail = reason, cause.Error()
	f.failures++
	limit := retryMax
	if reason == ReasonNetnsGone {
		limit = netnsRetryMax
	}
	f.retryAt = time.Now().Add(min(retryMin<<min(f.failures-1, 16), limit))
	c.countFaults()
}

// up records that port name forwards; mu is held.
func (c *Controller) up(name string) {
	if _, ok := c.faults[name]; ok {
		delete(c.faults, name)
		c.countFaults()
	}
}

// countFaults sets the gauge of ports down; mu is held.
func (c *Controller) countFaults() {
	count := map[string]int{}
	for _, f := range c.faults {
		count[f.reason]++
	}
	for _, r := range faultReasons() {
		c.metrics.portsDown.WithLabelValues(r).Set(float64(count[r]))
	}
}

// portStatus is port name's status for its view; mu is held.
func (c *Controller) portStatus(name string) (status, reason, detail string) {
	if f := c.faults[name]; f != nil {
		return v1.PortDown, f.reason, f.detail
	}
	return v1.PortForwarding, "", ""
}

// watchPorts starts the watcher of this host's ports when the backend can
// check them; the channel it returns is closed once the watcher has ended,
// which it does with ctx.
func (c *Controller) watchPorts(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	pc := capabilities(c.status().backend).PortChecker
	if pc == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		c.watchLoop(ctx, pc)
	}()
	return done
}

// watchLoop checks this host's ports, and repairs those that are broken, until
// ctx ends: all of them on each of the backend's signals and at every
// sweep, and those down when they are due for another try.
func (c *Controller) watchLoop(ctx context.Context, pc datapath.PortChecker) {
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	retry := time.NewTicker(retryTick)
	defer retry.Stop()
	var signalled time.Time // when the last round for a signal began
	for {
		all, depth := true, datapath.CheckAll
		select {
		case <-ctx.Done():
			return
		case <-pc.Changed():
			// A bulk attach signals without pause, and each round looks at
			// every port: spaced rounds keep that cost linear in the ports.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(signalled.Add(signalGap))):
			}
			signalled, depth = time.Now(), datapath.CheckHost
		case <-sweep.C:
		case <-retry.C:
			all = false
		}
		c.checkPorts(ctx, pc, all, depth)
	}
}

// checkPorts checks to depth and repairs, a few at once, the ports that
// are not being changed by a request: with all, every one whose repair is
// not backing off, else only the down ones due for another try (which are
// looked at in full whatever depth says).
func (c *Controller) checkPorts(ctx context.Context, pc datapath.PortChecker, all bool, depth datapath.CheckDepth) {
	if c.Ready() != nil {
		return // it can neither tell nor repair: the next signal or sweep will
	}
	now := time.Now()
	c.mu.Lock()
	var names []string
	for name := range c.ports {
		f := c.faults[name]
		if !c.isBusy(name) && (f == nil && all || f != nil && !now.Before(f.retryAt)) {
			names = append(names, name)
		}
	}
	c.mu.Unlock()
	slices.Sort(names)
	next := make(chan string)
	var wg sync.WaitGroup
	for range min(reconcileWorkers, len(names)) {
		wg.Go(func() {
			for name := range next {
				c.changing.RLock()
				_, _ = c.ensurePort(ctx, pc, name, depth) // what it finds, it logs
				c.releaseGone(ctx, name)
				c.changing.RUnlock()
			}
		})
	}
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		next <- name
	}
	close(next)
	wg.Wait()
}

// ensurePort checks that this host's port name forwards and, when it does
// not, marks it down and attaches it again under its busy mark, as a
// request would; changing is held shared. It returns the port's view, and
// why the port stays down if it does. Without a checker (pc nil) only a
// port already known to be down is attached again.
func (c *Controller) ensurePort(ctx context.Context, pc datapath.PortChecker, name string, depth datapath.CheckDepth) (v1.Port, error) {
	c.mu.Lock()
	p, ok := c.ports[name]
	n, b, f := c.networks[p.Network], c.backend, c.faults[name]
	_, nsKnown := c.netnsIDs[name]
	var err error
	switch {
	case !ok:
		err = fmt.Errorf("%w: port %q", ErrNotFound, name)
	case c.repairs[name] != nil:
		// A repair, not a request, holds it: its outcome is what the
		// caller (an identical PUT) asks for.
		done := c.repairs[name]
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return v1.Port{}, fmt.Errorf("port %q: wait for its repair: %w", name, ctx.Err())
		}
		return c.ensurePort(ctx, pc, name, depth)
	case c.isBusy(name):
		err = fmt.Errorf("%w: port %q is being changed by another request", ErrConflict, name)
	}
	// A backend that is not ready (OVSDB away, the bridge gone) can
	// neither tell nor repair: an identical PUT cannot confirm the port.
	if err == nil && (pc != nil || f != nil) {
		err = c.readyLocked()
	}
	if err != nil || pc == nil && f == nil {
		view := v1.Port{}
		if err == nil {
			view = c.view(p)
		}
		c.mu.Unlock()
		return view, err
	}
	c.mu.Unlock()

	reason := ""
	if pc != nil {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		if f != nil {
			depth = datapath.CheckAll // a port down is looked at in full
		}
		err = pc.CheckPort(cctx, n, p, depth)
		if err != nil && depth == datapath.CheckHost && reasonOf(err, "") != "" {
			// CheckHost may read what the host showed before this port's
			// own attach was seen (a shared dump of links lags their
			// events under load): a fault it finds is looked at in full
			// before the port is called down and attached again.
			depth = datapath.CheckAll
			err = pc.CheckPort(cctx, n, p, depth)
		}
		cancel()
		if reason = reasonOf(err, ""); err != nil && reason == "" {
			// The check itself failed (the switch did not answer in
			// time): that says nothing of the port, whose status stays,
			// and an identical PUT cannot confirm that it forwards.
			c.log.Warn("port not checked", "port", name, "err", err)
			view, _ := c.Port(name)
			return view, fmt.Errorf("check port %q: %w", name, err)
		}
	} else {
		// Down when the reconcile could not attach it: try again.
		reason, err = f.reason, errors.New(f.detail)
	}
	var nsNow nsfile.ID
	var nsErr error
	// Looked at (an open) once the port is seen forwarding for the first
	// time — its attach's own events bring that check — and then on full
	// checks and faults only.
	if procNetns(p) && (depth == datapath.CheckAll || err != nil || !nsKnown) {
		nsNow, nsErr = c.netnsID(ctx, p.NetnsPath())
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.ports[name]; !ok || cur != p || c.isBusy(name) {
		// A request changed it meanwhile: its outcome stands.
		return v1.Port{}, fmt.Errorf("%w: port %q is being changed by another request", ErrConflict, name)
	}
	if err == nil {
		if procNetns(p) && (depth == datapath.CheckAll || !nsKnown) && nsErr == nil {
			c.netnsIDs[name] = nsNow
		}
		c.up(name)
		return c.view(p), nil
	}
	// Its namespace end to be made again, in a process's namespace: only
	// in the one it was seen in (procNetns).
	if was, ok := c.netnsIDs[name]; procNetns(p) && reason == ReasonLinkGone && (!ok || nsErr != nil || nsNow != was) {
		reason, err = ReasonNetnsGone, fmt.Errorf("%w: netns %s is not the namespace port %q was seen in: its process has gone",
			datapath.ErrNoNetns, p.NetnsPath(), name)
	}
	if f == nil || f.reason != reason {
		c.log.Warn("port not forwarding", "port", name, "reason", reason, "err", err)
	}
	if reason == ReasonNetnsGone && pc != nil {
		// Nothing to attach to until the namespace is back.
		c.down(name, reason, err)
		return c.view(p), fmt.Errorf("port %q: %w", name, err)
	}
	if f == nil || f.reason != reason {
		c.down(name, reason, err) // GET shows it down during the repair
	}
	c.busy[name] = p
	repaired := make(chan struct{})
	c.repairs[name] = repaired
	c.mu.Unlock()
	got, err := c.repair(ctx, b, n, p)
	attached := got != (model.Port{})
	if attached && pc != nil {
		// A repair is done when the check says so: an attach and a check
		// that disagree must back off as a failed attach does, not take
		// the next signal — the attach's own — for a new fault.
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		if cerr := pc.CheckPort(cctx, n, got, datapath.CheckAll); cerr != nil {
			err = fmt.Errorf("repair port %q did not take: %w", name, cerr)
		}
		cancel()
	}
	c.mu.Lock()
	delete(c.busy, name)
	delete(c.repairs, name)
	close(repaired)
	if attached {
		c.ports[name] = got // what the datapath and the record now have
	}
	switch {
	case !attached && ctx.Err() != nil:
		// Cut short (shutdown, a client gone): that says nothing of the port.
		return c.view(p), err
	case !attached || err != nil && reasonOf(err, "") != "":
		c.metrics.repairs.WithLabelValues("failed").Inc()
		c.down(name, reasonOf(err, reason), err)
		c.log.Warn("port not repaired", "port", name, "err", err,
			"retry_in", time.Until(c.faults[name].retryAt).Round(time.Millisecond))
		return c.view(c.ports[name]), err
	}
	c.metrics.repairs.WithLabelValues("repaired").Inc()
	c.up(name)
	c.log.Info("port repaired", "port", name, "was", reason)
	return c.view(got), err
}

// procNetns tells whether p's namespace is named by a process's path
// (/proc/PID/ns/net): when the process ends, its namespace goes with it,
// and the PID, so the path, may come to name another process's — another
// container's — namespace. Such a port is made again only in the
// namespace it was seen forwarding in (netnsIDs): a repair must never put
// a port's address into a stranger's namespace. A name under
// /var/run/netns made again is the same namespace to its owner, and gets
// its port back.
func procNetns(p model.Port) bool {
	return p.Type == v1.PortVeth && strings.HasPrefix(p.NetnsPath(), "/proc/")
}

// procNetnsHolds tells, before the start-up reconcile attaches p, whether
// a port whose namespace is a process's path (procNetns) still has its
// namespace end there, and returns that namespace's identity to remember
// (nil for other ports). The daemon has not seen the port forwarding in
// this run, so it must not make the namespace end again in whatever
// namespace the path names now: ErrNoNetns, the port stays down.
func (c *Controller) procNetnsHolds(ctx context.Context, b datapath.Backend, n model.Network, p model.Port) (*nsfile.ID, error) {
	pc := capabilities(b).PortChecker
	if !procNetns(p) || pc == nil {
		return nil, nil
	}
	err := pc.CheckPort(ctx, n, p, datapath.CheckAll)
	if errors.Is(err, datapath.ErrLinkGone) || errors.Is(err, datapath.ErrNoNetns) {
		return nil, fmt.Errorf("%w: netns %s: the port's interface is not there, and the path of a process's namespace may name another one by now: %v",
			datapath.ErrNoNetns, p.NetnsPath(), err)
	}
	id, err := c.netnsID(ctx, p.NetnsPath())
	if err != nil {
		return nil, err
	}
	return &id, nil
}

// seenIn remembers the namespace a port with a process's path (procNetns)
// was attached in, as a check that finds it forwarding does: an attach
// that completed put its namespace end there.
func (c *Controller) seenIn(ctx context.Context, name string, p model.Port) {
	id, err := c.netnsID(ctx, p.NetnsPath())
	if err != nil {
		return // the next check that finds it forwarding will
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.ports[name]; ok && cur.Netns == p.Netns {
		c.netnsIDs[name] = id
	}
}

// forget drops what the watcher knows of a port that is gone; mu is held.
func (c *Controller) forget(name string) {
	c.up(name)
	delete(c.netnsIDs, name)
}

// isBusy tells whether a request or the watcher is changing port name;
// mu is held.
func (c *Controller) isBusy(name string) bool {
	_, busy := c.busy[name]
	return busy
}

// repair attaches p again and records a changed ofport, as the reconcile
// does. It returns p as attached when the attach succeeded, even if the
// record could not be updated: the cache then holds what the datapath has,
// and the next reconcile stores it.
func (c *Controller) repair(ctx context.Context, b datapath.Backend, n model.Network, p model.Port) (model.Port, error) {
	ctx, cancel := context.WithTimeout(ctx, repairTimeout)
	defer cancel()
	got, err := b.AttachPort(ctx, n, p)
	if err != nil {
		return model.Port{}, fmt.Errorf("repair port %q: %w", p.Name, err)
	}
	if got != p {
		if err := c.store.UpdatePort(ctx, got); err != nil {
			return got, fmt.Errorf("repair port %q: record its ofport: %w", p.Name, err)
		}
	}
	return got, nil
}

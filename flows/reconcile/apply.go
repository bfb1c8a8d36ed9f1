// Package reconcile keeps a bridge's flow table equal to a desired flow set
// without a window of missing flows: it dumps the flows we own, computes the
// difference (flows/flowset), and applies it in one atomic bundle. Flows
// that carry another owner's cookie are never read into the diff, so never
// touched; flows that did not change are not sent, so they keep their
// counters.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// Bridge reconciles the flow table of one switch session.
type Bridge struct {
	conn     *ofconn.Conn
	space    flowset.CookieSpace
	metrics  *Metrics
	bundleID atomic.Uint32
	// syncing serialises Syncs: two diffs computed against the same dump
	// would each apply their own view of the difference. Changes hold it
	// shared: each sends only its own objects' flows, so concurrent ones
	// pipeline their bundles on the session, and ovs-vswitchd takes them in
	// one pass of its main loop.
	syncing sync.RWMutex
	synced  atomic.Bool // a Sync has succeeded on this session

	// Changes submitted while a bundle is in flight wait in queue and go
	// together in the next one (group commit): under load ovs-vswitchd
	// takes one bundle per pass of its main loop, not one per change.
	qmu        sync.Mutex
	queue      []*Pending
	committing bool // a Wait is sending the queue
}

// changeTimeout bounds one group commit; it is not any one caller's
// context, since a caller that gives up must not fail the others' changes.
const changeTimeout = time.Minute

// New returns a reconciler for the switch behind conn, owning the flows whose
// cookies lie in space.
func New(conn *ofconn.Conn, space flowset.CookieSpace, metrics *Metrics) *Bridge {
	return &Bridge{conn: conn, space: space, metrics: metrics}
}

// Result says what one Sync did.
type Result struct {
	Plan flowset.Plan // what was applied
	Took time.Duration
}

// Sync makes the switch's flows, groups and meters in our space equal
// desired, the flows and groups in one atomic bundle: either every change
// of them lands or none does. Nothing is sent when nothing differs.
func (b *Bridge) Sync(ctx context.Context, desired flowset.Desired) (Result, error) {
	b.syncing.Lock()
	defer b.syncing.Unlock()
	start := time.Now()
	installed, err := b.Dump(ctx)
	if err != nil {
		return Result{}, err
	}
	plan, err := flowset.Diff(b.space, desired, installed)
	if err != nil {
		return Result{}, err
	}
	if err := b.applyPlan(ctx, plan); err != nil {
		return Result{}, err
	}
	return Result{Plan: plan, Took: time.Since(start)}, nil
}

// Pending is a change submitted to the switch and not yet known committed.
type Pending struct {
	b         *Bridge
	plan      flowset.Plan
	start     time.Time
	done      chan error
	committed func(flowset.Plan) // told after a successful commit, if set
}

// Submit queues the difference between two desired states, without asking
// the switch what it holds: the caller knows the objects it changes (a Sync
// at the same time is harmless, since both only ever converge on desired).
// The switch sees queued changes in the order they were submitted, all in
// one bundle or in consecutive ones: a caller that submits while it holds
// the lock that orders its changes (two ports' edits of their network's
// flood group) gets them applied in that order without holding the lock
// while it waits.
func (b *Bridge) Submit(before, after flowset.Desired) (*Pending, error) {
	plan, err := flowset.Change(b.space, before, after)
	if err != nil {
		return nil, err
	}
	p := &Pending{b: b, plan: plan, start: time.Now(), done: make(chan error, 1)}
	if plan.Len() == 0 {
		p.done <- nil
		return p, nil
	}
	b.qmu.Lock()
	b.queue = append(b.queue, p)
	b.qmu.Unlock()
	return p, nil
}

// Wait returns once p's change is committed, or refused with the others of
// its bundle (an atomic bundle fails as a whole). It always waits for the
// outcome, which ctx does not bound: the caller must know whether to undo.
// The first waiter that finds no bundle in flight sends the queue until it
// is empty; the others wait for it.
func (p *Pending) Wait(ctx context.Context) (Result, error) {
	b := p.b
	b.qmu.Lock()
	lead := !b.committing && len(b.queue) > 0
	b.committing = b.committing || lead
	b.qmu.Unlock()
	if lead {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), changeTimeout)
		b.sendQueue(cctx)
		cancel()
	}
	if err := <-p.done; err != nil {
		return Result{}, err
	}
	if p.committed != nil {
		p.committed(p.plan)
	}
	return Result{Plan: p.plan, Took: time.Since(p.start)}, nil
}

// sendQueue commits the queue, one bundle per batch, until it is empty.
func (b *Bridge) sendQueue(ctx context.Context) {
	for {
		b.qmu.Lock()
		batch := b.queue
		b.queue = nil
		if len(batch) == 0 {
			b.committing = false
			b.qmu.Unlock()
			return
		}
		b.qmu.Unlock()
		plans := make([]flowset.Plan, len(batch))
		for i, p := range batch {
			plans[i] = p.plan
		}
		b.syncing.RLock()
		err := b.applyPlans(ctx, plans...)
		b.syncing.RUnlock()
		for _, p := range batch {
			if err == nil {
				b.metrics.applied(p.plan)
			}
			p.done <- err
		}
	}
}

func (b *Bridge) applyPlan(ctx context.Context, plan flowset.Plan) error {
	if plan.Len() == 0 {
		return nil
	}
	if err := b.applyPlans(ctx, plan); err != nil {
		return err
	}
	b.metrics.applied(plan)
	return nil
}

// applyPlans sends plans, in order, as one change: the meters their flows
// will use, then their flows and groups in one bundle, then the deletion
// of the meters no flow uses any more (flowset.MeterMessages: OVS bundles
// no meter mod). A failure leaves the bridge's flows as they were, and
// takes back the meters it added (undoMeters).
func (b *Bridge) applyPlans(ctx context.Context, plans ...flowset.Plan) error {
	before, after := flowset.MeterMessages(plans...)
	var msgs []openflow.Message
	for _, p := range plans {
		msgs = append(msgs, p.Messages()...)
	}
	err := b.sendMeters(ctx, before)
	if err == nil && len(msgs) > 0 {
		err = b.Apply(ctx, msgs)
	}
	if err != nil {
		err = errors.Join(err, b.undoMeters(ctx, before))
	}
	if err == nil {
		err = b.sendMeters(ctx, after)
	}
	if err != nil {
		b.metrics.switchError(err)
	}
	return err
}

// undoMeters deletes the meters that mods added, after the change they
// were for failed: no flow uses them, and the caller rolls back as if the
// change never was (the attach of a port, whose meter would otherwise
// stay until the next sync). Meters modified are left as they are: their
// flows stayed, and a modify refused changed nothing. Best effort, and
// bounded on its own: ctx may be what ran out.
func (b *Bridge) undoMeters(ctx context.Context, mods []openflow.Message) error {
	var undo []openflow.Message
	for _, m := range mods {
		if mod, ok := m.(*openflow.MeterMod); ok && mod.Command == openflow.MeterAdd {
			undo = append(undo, &openflow.MeterMod{Command: openflow.MeterDelete, MeterID: mod.MeterID})
		}
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := b.sendMeters(uctx, undo); err != nil {
		return fmt.Errorf("undo: %w", err)
	}
	return nil
}

// sendMeters sends meter mods and waits until the switch has taken them.
func (b *Bridge) sendMeters(ctx context.Context, mods []openflow.Message) error {
	if len(mods) == 0 {
		return nil
	}
	if err := b.conn.SendBatch(ctx, mods); err != nil {
		return fmt.Errorf("meters: %w", err)
	}
	return nil
}

// Dump returns the switch's flows, groups and meters in our space.
func (b *Bridge) Dump(ctx context.Context) (flowset.Installed, error) {
	flows, err := ofconn.Stats[*openflow.FlowStatsReply](ctx, b.conn, openflow.FlowStatsByCookie(openflow.TableAll, b.space.Value, b.space.Mask))
	if err != nil {
		return flowset.Installed{}, fmt.Errorf("dump flows: %w", err)
	}
	groups, err := ofconn.Stats[*openflow.GroupDescReply](ctx, b.conn, &openflow.GroupDescRequest{})
	if err != nil {
		return flowset.Installed{}, fmt.Errorf("dump groups: %w", err)
	}
	meters, err := ofconn.Stats[*openflow.MeterConfigReply](ctx, b.conn, &openflow.MeterConfigRequest{MeterID: openflow.MeterAll})
	if err != nil {
		return flowset.Installed{}, fmt.Errorf("dump meters: %w", err)
	}
	return flowset.Installed{Flows: flows.Stats, Groups: groups.Groups, Meters: meters.Configs}, nil
}

// Apply sends msgs as one atomic, ordered bundle. Any message the switch
// refuses — at add time or at commit — leaves the table as it was.
//
// Two round trips: the bundle's open, its messages and a barrier go as one
// batch (the switch handles a connection's messages in order, so the adds
// find the bundle open, and a failed open fails them too), then the commit.
// The barrier is what makes a bad message spoil the bundle: OVS would commit
// the rest of a bundle whose add it refused.
func (b *Bridge) Apply(ctx context.Context, msgs []openflow.Message) error {
	start := time.Now()
	id := b.bundleID.Add(1)
	const flags = openflow.BundleAtomic | openflow.BundleOrdered
	batch := make([]openflow.Message, 0, len(msgs)+1)
	batch = append(batch, &openflow.BundleControl{BundleID: id, CtrlType: openflow.BundleOpenRequest, Flags: flags})
	for _, m := range msgs {
		batch = append(batch, &openflow.BundleAdd{BundleID: id, Flags: flags, Message: m})
	}
	if err := b.conn.SendBatch(ctx, batch); err != nil {
		// Best effort: the switch also drops an open bundle when the session ends.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		derr := b.control(dctx, id, openflow.BundleDiscardRequest, openflow.BundleDiscardReply, flags)
		return errors.Join(fmt.Errorf("bundle %d: %w", id, err), derr)
	}
	if err := b.control(ctx, id, openflow.BundleCommitRequest, openflow.BundleCommitReply, flags); err != nil {
		return fmt.Errorf("commit bundle %d of %d messages: %w", id, len(msgs), err)
	}
	b.metrics.bundle.Observe(time.Since(start).Seconds())
	return nil
}

func (b *Bridge) control(ctx context.Context, id uint32, req, want openflow.BundleCtrlType, flags openflow.BundleFlags) error {
	reply, err := b.conn.Request(ctx, &openflow.BundleControl{BundleID: id, CtrlType: req, Flags: flags})
	if err != nil {
		return err
	}
	got, ok := reply.Body.(*openflow.BundleControl)
	if !ok || got.CtrlType != want || got.BundleID != id {
		return fmt.Errorf("bundle %d: unexpected answer %s %+v", id, reply.Header.Type, reply.Body)
	}
	return nil
}

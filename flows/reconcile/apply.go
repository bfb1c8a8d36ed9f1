package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// Bridge reconciles the flow table of one switch session.
type Bridge struct {
	conn     *ofconn.Conn
	space    CookieSpace
	metrics  *Metrics
	bundleID atomic.Uint32
	// syncing serialises Syncs: two diffs computed against the same dump
	// would each apply their own view of the difference.
	syncing sync.Mutex
	synced  atomic.Bool // a Sync has succeeded on this session
}

// New returns a reconciler for the switch behind conn, owning the flows whose
// cookies lie in space.
func New(conn *ofconn.Conn, space CookieSpace, metrics *Metrics) *Bridge {
	return &Bridge{conn: conn, space: space, metrics: metrics}
}

// Result says what one Sync did.
type Result struct {
	Plan Plan // what was applied
	Took time.Duration
}

// Sync makes the switch's flows and groups in our space equal desired, in
// one atomic bundle: either every change lands or none does. Nothing is sent
// when nothing differs.
func (b *Bridge) Sync(ctx context.Context, desired Desired) (Result, error) {
	b.syncing.Lock()
	defer b.syncing.Unlock()
	start := time.Now()
	installed, err := b.Dump(ctx)
	if err != nil {
		return Result{}, err
	}
	plan, err := Diff(b.space, desired, installed)
	if err != nil {
		return Result{}, err
	}
	if err := b.applyPlan(ctx, plan); err != nil {
		return Result{}, err
	}
	return Result{Plan: plan, Took: time.Since(start)}, nil
}

// Change applies the difference between two desired states, without asking
// the switch what it holds: the caller knows the objects it changes. A Sync
// at the same time is harmless, since both only ever converge on desired.
func (b *Bridge) Change(ctx context.Context, before, after Desired) (Result, error) {
	start := time.Now()
	plan, err := Change(b.space, before, after)
	if err != nil {
		return Result{}, err
	}
	b.syncing.Lock()
	defer b.syncing.Unlock()
	if err := b.applyPlan(ctx, plan); err != nil {
		return Result{}, err
	}
	return Result{Plan: plan, Took: time.Since(start)}, nil
}

func (b *Bridge) applyPlan(ctx context.Context, plan Plan) error {
	if plan.Len() == 0 {
		return nil
	}
	if err := b.Apply(ctx, plan.Messages()); err != nil {
		b.metrics.switchError(err)
		return err
	}
	b.metrics.applied(plan)
	return nil
}

// Dump returns the switch's flows and groups in our space.
func (b *Bridge) Dump(ctx context.Context) (Installed, error) {
	reply, err := b.conn.Multipart(ctx, &openflow.MultipartRequest{Body: &openflow.FlowStatsRequest{
		TableID: openflow.TableAll, OutPort: openflow.PortAny, OutGroup: openflow.GroupAny,
		Cookie: b.space.Value, CookieMask: b.space.Mask,
	}})
	if err != nil {
		return Installed{}, fmt.Errorf("dump flows: %w", err)
	}
	stats, ok := reply.Body.(*openflow.FlowStatsReply)
	if !ok {
		return Installed{}, fmt.Errorf("dump flows: answered with multipart type %d", reply.Body.MultipartType())
	}
	reply, err = b.conn.Multipart(ctx, &openflow.MultipartRequest{Body: &openflow.GroupDescRequest{}})
	if err != nil {
		return Installed{}, fmt.Errorf("dump groups: %w", err)
	}
	groups, ok := reply.Body.(*openflow.GroupDescReply)
	if !ok {
		return Installed{}, fmt.Errorf("dump groups: answered with multipart type %d", reply.Body.MultipartType())
	}
	return Installed{Flows: stats.Stats, Groups: groups.Groups}, nil
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

package ovs

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// pickupWindow is how long the pickup window stays open (docs/PIPELINE.md,
// Security groups on OVS): the flows that take up the connections conntrack lost, whose
// next packet comes from the side that did not open them. Such a packet is
// a retransmission or the next segment of a sender the restart stalled;
// Linux caps TCP's retransmission timeout at 120 s (TCP_RTO_MAX), so a
// live sender sends within two minutes of the restart, and the third
// minute covers ovs-vswitchd's own restart and our resync. Longer would
// only widen what the window accepts that no rule allows as it is: non-SYN
// TCP whose reverse both sides allow.
const pickupWindow = 3 * time.Minute

// pickupRetry is how soon a close of the window that the switch did not
// take (its session was down) is tried again.
const pickupRetry = 10 * time.Second

// pickupTimeout bounds the look at a connecting switch's flows, and a
// close of the window.
const pickupTimeout = 10 * time.Second

// pickupClock opens and closes the pickup window.
type pickupClock struct {
	length  time.Duration // Config.PickupWindow
	opened  uint64        // the windows opened, which number state.pickup
	timer   *time.Timer   // closes the open one
	stopped bool          // the backend is closed: no window opens
}

// checkPickup opens the pickup window when the switch that connects may
// have lost conntrack: it holds none of our flows (a new ovs-vswitchd, or
// a daemon start that finds the switch without them), or it holds the
// window's (a daemon restart while the window was open, which goes on:
// such a restart sends no change either). A switch that kept our flows
// without the window kept its conntrack too — the daemon restarted —
// and nothing opens. On the bridge's session, before it is synced.
func (b *Backend) checkPickup(c *ofconn.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), pickupTimeout)
	defer cancel()
	b.mu.Lock() // the pipeline's tunnel changes under Prune (setTunnel)
	table, cookie, priority := b.pipeline.PickupMark()
	b.mu.Unlock()
	held, err := ofconn.Stats[*openflow.FlowStatsReply](ctx, c, openflow.FlowStatsByCookie(table, cookie, ^uint64(0)))
	if err != nil {
		b.log.Error("security groups: look for our flows on the connecting switch; the pickup window stays as it is", "err", err)
		return
	}
	if len(held.Stats) == 0 || slices.ContainsFunc(held.Stats, func(f openflow.FlowStats) bool { return f.Priority == priority }) {
		b.openPickup(len(held.Stats) == 0)
	}
}

// openPickup opens the pickup window, or holds the open one open for its
// whole length again, in the state only: the sync that follows the
// switch's connection sends the flows.
func (b *Backend) openPickup(lost bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pickup.stopped {
		return
	}
	b.pickup.opened++
	n := b.pickup.opened
	b.state.pickup = n
	if b.pickup.timer != nil {
		b.pickup.timer.Stop()
	}
	b.pickup.timer = time.AfterFunc(b.pickup.length, func() { b.pickupEnds(n) })
	b.log.Info("security groups: pickup window open, for connections whose conntrack entries the switch may have lost",
		"switch_without_our_flows", lost, "for", b.pickup.length)
}

// pickupEnds closes window n when its time is up; a close the switch did
// not take is tried again.
func (b *Backend) pickupEnds(n uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), pickupTimeout)
	defer cancel()
	err := b.closePickup(ctx, n)
	if err == nil {
		b.log.Info("security groups: pickup window closed")
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.pickup == n && !b.pickup.stopped {
		b.log.Error("security groups: close the pickup window; trying again", "err", err, "in", pickupRetry)
		b.pickup.timer = time.AfterFunc(pickupRetry, func() { b.pickupEnds(n) })
	}
}

// closePickup closes window n, if it is still the one open: one bundle
// removes its flows, the difference the window makes.
func (b *Backend) closePickup(ctx context.Context, n uint64) error {
	err := b.change(ctx, b.pickupScope(), func(s *state) func() {
		if s.pickup != n {
			return func() {}
		}
		s.pickup = 0
		return func() { s.pickup = n }
	})
	if err != nil {
		return fmt.Errorf("security groups: close the pickup window: %w", err)
	}
	return nil
}

// stopPickup stops the window's timer for good (Close); the flows stay.
func (b *Backend) stopPickup() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pickup.stopped = true
	if b.pickup.timer != nil {
		b.pickup.timer.Stop()
	}
}

// pickupScope is what the pickup window changes: the skeleton's flows,
// every member address's (in a cluster remote_sender's flow of each is a
// pickup flow: pipeline.Member) and every attached port's ACL flows.
// policyScope sends an address's while the window is open, so closing it
// must remove them in the same bundle as the rest.
func (b *Backend) pickupScope() scope {
	return func(s state) flowset.Desired {
		open := s.pickup != 0
		d := flowset.Desired{Flows: slices.Concat(b.pipeline.Base(open), b.pipeline.Members(s.policy, open))}
		for network, byName := range s.ports {
			n, ok := s.networks[network]
			if !ok {
				continue
			}
			for _, p := range byName {
				d.Flows = append(d.Flows, b.pipeline.PortACL(s.policy, p, n, open)...)
			}
		}
		return d
	}
}

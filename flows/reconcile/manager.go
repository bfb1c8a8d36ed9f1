package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// syncTimeout bounds one reconcile of one switch.
const syncTimeout = 2 * time.Minute

// Manager keeps every connected switch's flows equal to what Desired says
// for its datapath. A switch that connects — for the first time or again
// after a restart of either side — is resynced by a diff, never wiped.
type Manager struct {
	space   flowset.CookieSpace
	source  Source
	metrics *Metrics
	log     *slog.Logger

	mu       sync.Mutex
	switches map[uint64]*Bridge
	closed   bool
}

// Source tells a Manager what each switch should hold.
type Source interface {
	// Desired returns what a datapath should hold. ok is false while the
	// source does not know yet (its state is still being loaded): a switch
	// that connects then is left as it is rather than synced to a partial
	// state, which would cut traffic that a restart must not touch. It must
	// be safe for concurrent use.
	Desired(dpid uint64) (d flowset.Desired, ok bool)
	// Synced is told when a switch that (re)connected has been synced: the
	// moment to restore what a restarted switch lost besides its flows.
	Synced(dpid uint64)
}

// NewManager returns a manager of the switches whose flows source describes.
func NewManager(space flowset.CookieSpace, source Source, metrics *Metrics, log *slog.Logger) *Manager {
	return &Manager{space: space, source: source, metrics: metrics, log: log, switches: map[uint64]*Bridge{}}
}

// Handle serves one session until it ends: it becomes the datapath's
// current session (closing an older one of the same datapath, which a
// reconnecting switch leaves half-open), and is synced at once.
func (m *Manager) Handle(c *ofconn.Conn) {
	dpid := c.DatapathID()
	b := New(c, m.space, m.metrics)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		c.Close() // a handshake that finished after Close
		return
	}
	old := m.switches[dpid]
	m.switches[dpid] = b
	m.mu.Unlock()
	if old != nil {
		old.conn.Close()
	}
	log := m.log.With("datapath", fmt.Sprintf("%016x", dpid))
	go m.watchAsync(c, log)
	switch err := m.sync(b); {
	case err == nil:
		m.source.Synced(dpid)
	case !errors.Is(err, errNotKnown):
		log.Error("initial flow sync failed; closing the session so the switch reconnects", "err", err)
		c.Close()
	}
	<-c.Done()
	log.Info("openflow session ended", "err", c.Err())
	m.mu.Lock()
	if m.switches[dpid] == b {
		delete(m.switches, dpid)
		m.metrics.setConnected(dpid, false)
	}
	m.mu.Unlock()
}

// watchAsync reads what the switch sends unasked. Errors that answer no
// pending request (a flow-mod's, after its batch gave up waiting) are counted
// and logged. Packet-ins have a queue of their own (ofconn.Conn.PacketIns),
// which the backend reads.
func (m *Manager) watchAsync(c *ofconn.Conn, log *slog.Logger) {
	for {
		select {
		case <-c.Done():
			return
		case msg := <-c.Async():
			if e, ok := msg.Body.(*openflow.ErrorMsg); ok {
				m.metrics.errors.WithLabelValues(e.ErrType.String()).Inc()
				log.Warn("switch reported an error", "xid", msg.Header.Xid, "err", e)
			}
		}
	}
}

// Close ends every session. A switch whose session lingered after its
// manager was dropped would never reconnect to a new one.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, b := range m.switches {
		b.conn.Close()
	}
}

// Sync resyncs the switch of dpid now, if it is connected.
func (m *Manager) Sync(dpid uint64) error {
	b, err := m.session(dpid)
	if err != nil {
		return err
	}
	return m.sync(b)
}

// Submit queues the difference between two desired states of dpid's
// switch (see Bridge.Submit); the change is logged once committed.
func (m *Manager) Submit(dpid uint64, before, after flowset.Desired) (*Pending, error) {
	b, err := m.session(dpid)
	if err != nil {
		return nil, err
	}
	p, err := b.Submit(before, after)
	if err != nil {
		return nil, fmt.Errorf("datapath %016x: %w", dpid, err)
	}
	p.committed = func(plan flowset.Plan) { m.logPlan(dpid, plan) }
	return p, nil
}

func (m *Manager) session(dpid uint64) (*Bridge, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.switches[dpid]
	if b == nil {
		return nil, fmt.Errorf("datapath %016x is not connected", dpid)
	}
	return b, nil
}

// Conn is dpid's current session, for requests that are not the
// reconciler's (statistics): the one the manager reconciles, so
// that a session it has replaced or closed is never asked.
func (m *Manager) Conn(dpid uint64) (*ofconn.Conn, error) {
	b, err := m.session(dpid)
	if err != nil {
		return nil, err
	}
	return b.conn, nil
}

// Connected reports whether dpid has a session, synced or not.
func (m *Manager) Connected(dpid uint64) bool {
	_, err := m.session(dpid)
	return err == nil
}

// Synced reports whether dpid has a session whose flows have been synced
// at least once: from then on the switch forwards as desired.
func (m *Manager) Synced(dpid uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.switches[dpid]
	return ok && b.synced.Load()
}

// errNotKnown: the desired state of a switch is not known yet.
var errNotKnown = errors.New("desired state not known yet")

func (m *Manager) sync(b *Bridge) error {
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	dpid := b.conn.DatapathID()
	desired, ok := m.source.Desired(dpid)
	if !ok {
		return fmt.Errorf("datapath %016x: %w", dpid, errNotKnown)
	}
	res, err := b.Sync(ctx, desired)
	if err != nil {
		return err
	}
	b.synced.Store(true)
	m.metrics.setConnected(dpid, true)
	p := res.Plan
	m.log.Info("flows synced", "datapath", fmt.Sprintf("%016x", dpid),
		"added", len(p.Add), "modified", len(p.Modify), "deleted", len(p.Delete),
		"groups_added", len(p.GroupAdd), "groups_modified", len(p.GroupModify), "groups_deleted", len(p.GroupDelete),
		"meters_added", len(p.MeterAdd), "meters_modified", len(p.MeterModify), "meters_deleted", len(p.MeterDelete),
		"took", res.Took)
	m.logPlan(dpid, p)
	return nil
}

// logPlan logs every flow mod of a plan at debug level, as ovs-ofctl would
// write it.
func (m *Manager) logPlan(dpid uint64, p flowset.Plan) {
	if !m.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	id := fmt.Sprintf("%016x", dpid)
	for op, mods := range map[string][]openflow.FlowMod{"add": p.Add, "modify": p.Modify, "delete": p.Delete} {
		for i := range mods {
			m.log.Debug("flow "+op, "datapath", id, "flow", openflow.FormatFlowMod(&mods[i]))
		}
	}
}

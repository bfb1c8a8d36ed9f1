package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// syncTimeout bounds one reconcile of one switch.
const syncTimeout = 2 * time.Minute

// Manager keeps every connected switch's flows equal to what Desired says
// for its datapath. A switch that connects — for the first time or again
// after a restart of either side — is resynced by a diff, never wiped.
type Manager struct {
	space   CookieSpace
	desired func(dpid uint64) []Flow
	metrics *Metrics
	log     *slog.Logger

	mu       sync.Mutex
	switches map[uint64]*Bridge
	closed   bool
}

// NewManager returns a manager; desired is called for each sync and must be
// safe for concurrent use.
func NewManager(space CookieSpace, desired func(dpid uint64) []Flow, metrics *Metrics, log *slog.Logger) *Manager {
	return &Manager{space: space, desired: desired, metrics: metrics, log: log, switches: map[uint64]*Bridge{}}
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
	if err := m.sync(b); err != nil {
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
// and logged; the pipeline has no use for packet-ins yet.
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
	m.mu.Lock()
	b := m.switches[dpid]
	m.mu.Unlock()
	if b == nil {
		return fmt.Errorf("datapath %016x is not connected", dpid)
	}
	return m.sync(b)
}

// Synced reports whether dpid has a session whose flows have been synced
// at least once: from then on the switch forwards as desired.
func (m *Manager) Synced(dpid uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.switches[dpid]
	return ok && b.synced.Load()
}

func (m *Manager) sync(b *Bridge) error {
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	res, err := b.Sync(ctx, m.desired(b.conn.DatapathID()))
	if err != nil {
		return err
	}
	b.synced.Store(true)
	dpid := fmt.Sprintf("%016x", b.conn.DatapathID())
	m.metrics.setConnected(b.conn.DatapathID(), true)
	p := res.Plan
	m.log.Info("flows synced", "datapath", dpid,
		"added", len(p.Add), "modified", len(p.Modify), "deleted", len(p.Delete), "took", res.Took)
	if m.log.Enabled(context.Background(), slog.LevelDebug) {
		for op, mods := range map[string][]openflow.FlowMod{"add": p.Add, "modify": p.Modify, "delete": p.Delete} {
			for i := range mods {
				m.log.Debug("flow "+op, "datapath", dpid, "flow", openflow.FormatFlowMod(&mods[i]))
			}
		}
	}
	return nil
}

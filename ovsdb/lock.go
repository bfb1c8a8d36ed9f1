package ovsdb

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// DaemonKey is the bridge's external ID naming the daemon that owns it
// (BridgeLock's holder), for whoever finds the lock taken.
const DaemonKey = "ovs-vnet-daemon"

// ErrBridgeLocked means another ovs-vnet daemon holds the bridge's lock.
var ErrBridgeLocked = errors.New("another ovs-vnet daemon holds the bridge")

const (
	// lockTimeout bounds one attempt to ask for the lock (dial, ask,
	// answer), and each write on the lock's session.
	lockTimeout = 5 * time.Second
	// keepaliveInterval is how often the holder sends its own echo: over
	// tcp: a session can vanish without a FIN (a firewall's state dropped,
	// a cable pulled), and ovsdb-server's inactivity probe then frees the
	// lock while a holder that only answers would wait forever. Three
	// intervals without a word from the server end the session.
	keepaliveInterval = 5 * time.Second
	// queueWait is how long a session queued for the lock waits for it
	// before giving up: the holder before us may be this daemon's previous
	// run, or its own previous session, that ovsdb-server has not seen end
	// yet — at once on a unix socket, within its inactivity probe over tcp
	// (5 s idle, then 5 s unanswered, by default).
	queueWait = 15 * time.Second
)

// LockOptions are what LockBridge needs beside the lock's name.
type LockOptions struct {
	Log *slog.Logger
	// Lost is told, once, that the lock is no longer ours: another
	// session took it while ours was away, or stole it. The daemon must
	// then leave the bridge alone. It must not block. nil: only logged.
	Lost func(error)
	// Tests shorten these; zero is the default above.
	keepalive, queueWait time.Duration
}

// BridgeLock is the OVSDB lock "ovs_vnet_<BRIDGE in hex>" (RFC 7047 §4.1.8), held on
// a session of its own for as long as the daemon runs: ovsdb-server
// releases it when the session ends, so a daemon that dies, or whose host
// does, holds nothing. It keeps two daemons off one bridge wherever they
// run — also in two network namespaces sharing one ovsdb-server, which no
// lock of the host's can see. libovsdb v0.7.0's client has no lock call,
// hence the plain JSON-RPC session: lock, answer the server's echoes and
// send ours. A lost session is made anew and the lock asked for again;
// when another session got it first, the lock is lost for good (Lost).
type BridgeLock struct {
	bridge, endpoint, name string
	opts                   LockOptions
	ctx                    context.Context // ends with Close
	cancel                 context.CancelFunc
	closeOnce              sync.Once
	done                   chan struct{}
	mu                     sync.Mutex
	sess                   *session // guarded by mu; replaced after a reconnect
}

// LockBridge takes the bridge's lock, or fails with ErrBridgeLocked when
// another session keeps it (queued, we wait a while for it: see queueWait).
func LockBridge(ctx context.Context, endpoint, bridge string, opts LockOptions) (*BridgeLock, error) {
	if opts.keepalive == 0 {
		opts.keepalive = keepaliveInterval
	}
	if opts.queueWait == 0 {
		opts.queueWait = queueWait
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	// A lock's name is an OVSDB <id> ([a-zA-Z_][a-zA-Z0-9_]*): the bridge's
	// name in hex keeps every bridge's lock its own.
	l := &BridgeLock{bridge: bridge, endpoint: endpoint, name: "ovs_vnet_" + hex.EncodeToString([]byte(bridge)), opts: opts,
		done: make(chan struct{})}
	s, err := l.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", bridge, err)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.sess = s
	go l.hold(s)
	return l, nil
}

// Close gives the lock up; a nil lock holds nothing.
func (l *BridgeLock) Close() {
	if l == nil {
		return
	}
	l.closeOnce.Do(func() {
		l.cancel()
		l.mu.Lock()
		l.sess.close()
		l.mu.Unlock()
		<-l.done
	})
}

// errStolen is the server's "stolen" notice: someone asked for the lock
// with steal, which no ovs-vnet daemon does.
var errStolen = errors.New("another ovsdb client stole it")

// hold keeps the lock: it serves the session, and after the session is
// lost (ovsdb-server restarted, or silent) takes the lock again on a new
// one. It ends on Close, or when the lock is lost for good.
func (l *BridgeLock) hold(s *session) {
	defer close(l.done)
	for {
		err := l.serve(s)
		s.close()
		if l.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errStolen) {
			l.lose(err)
			return
		}
		l.opts.Log.Warn("lost the OVSDB session holding the bridge lock; taking it again", "lock", l.name, "err", err)
		if s, err = l.reacquire(); err != nil {
			if l.ctx.Err() == nil {
				l.lose(fmt.Errorf("while its session was down, %w", err))
			}
			return
		}
		l.mu.Lock()
		l.sess = s
		l.mu.Unlock()
		if l.ctx.Err() != nil {
			// Close may have closed the previous session only.
			s.close()
			return
		}
		l.opts.Log.Info("holding the bridge lock again", "lock", l.name)
	}
}

func (l *BridgeLock) lose(err error) {
	err = fmt.Errorf("bridge %s: lost its OVSDB lock %s: %w", l.bridge, l.name, err)
	l.opts.Log.Error("the bridge is no longer this daemon's", "err", err)
	if l.opts.Lost != nil {
		l.opts.Lost(err)
	}
}

// reacquire asks for the lock on new sessions until ovsdb-server answers,
// backing off: while it is away nobody can take the lock. An answer that
// queues us past queueWait is ErrBridgeLocked: another session was first.
func (l *BridgeLock) reacquire() (*session, error) {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		select {
		case <-l.ctx.Done():
			return nil, l.ctx.Err()
		case <-time.After(backoff):
		}
		s, err := l.acquire(l.ctx)
		if err == nil || errors.Is(err, ErrBridgeLocked) || l.ctx.Err() != nil {
			return s, err
		}
		l.opts.Log.Debug("ask for the bridge lock again", "lock", l.name, "err", err)
	}
}

// acquire dials and asks for the lock; queued, it waits up to queueWait
// for the server to say "locked", which it does when the holder before us
// lets go. It returns the session that holds the lock, or ErrBridgeLocked.
func (l *BridgeLock) acquire(ctx context.Context) (*session, error) {
	ask, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	s, err := dialSession(ask, l.endpoint, l.opts.keepalive)
	if err != nil {
		return nil, err
	}
	locked, err := s.lock(ask, l.name)
	if err != nil {
		s.close()
		return nil, err
	}
	if locked {
		return s, nil
	}
	l.opts.Log.Info("the bridge lock is taken; waiting for it", "lock", l.name, "for", l.opts.queueWait)
	start := time.Now()
	wait, cancel := context.WithTimeout(ctx, l.opts.queueWait)
	defer cancel()
	for {
		m, err := s.next(wait)
		if err != nil {
			s.close()
			// ctx's own deadline counts too: the lock is still taken.
			if errors.Is(err, context.DeadlineExceeded) && !errors.Is(ctx.Err(), context.Canceled) {
				return nil, fmt.Errorf("%w (still after %s in the lock's queue)", ErrBridgeLocked, time.Since(start).Round(time.Second))
			}
			return nil, err
		}
		if m.Method == "locked" {
			return s, nil
		}
	}
}

// serve answers the server on the lock's session until the session ends
// or the lock is stolen.
func (l *BridgeLock) serve(s *session) error {
	for {
		m, err := s.next(l.ctx)
		if err != nil {
			return err
		}
		if m.Method == "stolen" {
			return errStolen
		}
	}
}

// rpc is a JSON-RPC 1.0 message as OVSDB speaks it.
type rpc struct {
	ID     any             `json:"id"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  json.RawMessage `json:"error,omitempty"`
}

// session is a JSON-RPC session with ovsdb-server that keeps itself alive:
// it sends an echo every keepalive and counts three keepalives without a
// message as the session's end.
type session struct {
	conn      net.Conn
	dec       *json.Decoder
	silence   time.Duration
	wmu       sync.Mutex // serialises writes: the keepalive's and next's
	enc       *json.Encoder
	closeOnce sync.Once
	closed    chan struct{}
}

func dialSession(ctx context.Context, endpoint string, keepalive time.Duration) (*session, error) {
	network, addr, ok := strings.Cut(endpoint, ":")
	if !ok || network != "unix" && network != "tcp" {
		return nil, fmt.Errorf("endpoint %q: want unix:PATH or tcp:HOST:PORT", endpoint)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s := &session{conn: conn, dec: json.NewDecoder(conn), enc: json.NewEncoder(conn), silence: 3 * keepalive, closed: make(chan struct{})}
	go s.keepalive(keepalive)
	return s, nil
}

func (s *session) close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.conn.Close()
	})
}

func (s *session) send(m rpc) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(lockTimeout))
	return s.enc.Encode(m)
}

func (s *session) keepalive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			if err := s.send(rpc{ID: "keepalive", Method: "echo", Params: json.RawMessage("[]")}); err != nil {
				s.close()
				return
			}
		}
	}
}

// lock asks for the lock; locked is the server's answer (false: we are
// queued, and will be told "locked" once the holder lets go).
func (s *session) lock(ctx context.Context, name string) (locked bool, err error) {
	params, _ := json.Marshal([]string{name})
	if err := s.send(rpc{ID: "lock", Method: "lock", Params: params}); err != nil {
		return false, err
	}
	for {
		m, err := s.next(ctx)
		if err != nil {
			return false, err
		}
		if m.ID != "lock" {
			continue
		}
		if len(m.Error) > 0 && string(m.Error) != "null" {
			return false, fmt.Errorf("lock %s: %s", name, m.Error)
		}
		var res struct {
			Locked bool `json:"locked"`
		}
		if err := json.Unmarshal(m.Result, &res); err != nil {
			return false, fmt.Errorf("lock %s: answer %s: %w", name, m.Result, err)
		}
		return res.Locked, nil
	}
}

// next is the server's next message but its echoes, which it answers. It
// fails with ctx's error when ctx ends (the session is then closed), and
// when the server has said nothing for three keepalives.
func (s *session) next(ctx context.Context) (rpc, error) {
	stop := context.AfterFunc(ctx, s.close)
	defer stop()
	for {
		deadline := time.Now().Add(s.silence)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = s.conn.SetReadDeadline(deadline)
		var m rpc
		if err := s.dec.Decode(&m); err != nil {
			if ctx.Err() != nil {
				return m, ctx.Err()
			}
			if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
				return m, context.DeadlineExceeded // before ctx's timer says so
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return m, fmt.Errorf("ovsdb-server said nothing for %s", s.silence)
			}
			return m, err
		}
		if m.Method == "echo" {
			if err := s.send(rpc{ID: m.ID, Result: m.Params, Error: json.RawMessage("null")}); err != nil {
				return m, err
			}
			continue
		}
		return m, nil
	}
}

// BridgeOwner is the bridge's DaemonKey record, "" when it has none.
func (c *Client) BridgeOwner(bridge string) string {
	ctx, cancel, err := c.readContext()
	if err != nil {
		return ""
	}
	defer cancel()
	br := &vswitch.Bridge{Name: bridge}
	if found, err := c.get(ctx, br); err != nil || !found {
		return ""
	}
	return br.ExternalIDs[DaemonKey]
}

// SetBridgeOwner writes record as the bridge's DaemonKey. It mutates the
// one key (delete, then insert), so external IDs others set meanwhile are
// kept.
func (c *Client) SetBridgeOwner(ctx context.Context, bridge, record string) error {
	br := &vswitch.Bridge{Name: bridge}
	found, err := c.get(ctx, br)
	switch {
	case err != nil:
		return fmt.Errorf("bridge %s: owner record: %w", bridge, err)
	case !found:
		return fmt.Errorf("bridge %s: owner record: no such bridge", bridge)
	case br.ExternalIDs[DaemonKey] == record:
		return nil
	}
	ops, err := c.lc.Where(br).Mutate(br,
		model.Mutation{Field: &br.ExternalIDs, Mutator: ovsdb.MutateOperationDelete, Value: []string{DaemonKey}},
		model.Mutation{Field: &br.ExternalIDs, Mutator: ovsdb.MutateOperationInsert, Value: map[string]string{DaemonKey: record}})
	if err != nil {
		return fmt.Errorf("bridge %s: owner record: %w", bridge, err)
	}
	if err := c.transact(ctx, ops); err != nil {
		return fmt.Errorf("bridge %s: owner record: %w", bridge, err)
	}
	return nil
}

package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// Ownership: every bridge/port this package creates carries external_ids
// OwnerKey = OwnerValue, so we only ever change rows we made.
const (
	OwnerKey   = "ovs-vnet-owner"
	OwnerValue = "ovs-vnet"
)

// ErrNotOwned is returned when a bridge or port exists but another tool made it.
var ErrNotOwned = errors.New("not owned by ovs-vnet")

var errNotConnected = errors.New("not connected to ovsdb-server")

const (
	// connectAttemptTimeout bounds one reconnect attempt made in the
	// background, where there is no caller context to bound it.
	connectAttemptTimeout = 5 * time.Second
	// cacheReadTimeout bounds how long a read without a caller context waits
	// for the cache to be rebuilt after a reconnect.
	cacheReadTimeout = 2 * time.Second
	// libovsdbMinLevel keeps libovsdb's V(4) transaction dumps and V(5)
	// per-row cache updates out of the daemon's log at any level; its
	// connection events (V(3)) show at debug, its errors always.
	libovsdbMinLevel = slog.LevelDebug + 1
)

// Client is one long-lived OVSDB connection with a monitor cache of the
// Open_vSwitch, Bridge, Port, Interface and Controller tables.
type Client struct {
	lc       client.Client
	endpoint string
	changed  *notifier
	// ifaceHooks are told of interface changes (OnInterfaceChange).
	ifaceHooks hooks
	// closed ends the background reconnect loop; see reconnectBackoff.
	closed    chan struct{}
	closeOnce sync.Once
}

// Dial connects to endpoint ("unix:/path" or "tcp:host:port"), starts the
// monitor and keeps reconnecting with backoff for the life of the client. It
// keeps trying the first connection until ctx ends, so a daemon started just
// before ovsdb-server still comes up.
func Dial(ctx context.Context, endpoint string, log *slog.Logger) (*Client, error) {
	if !strings.HasPrefix(endpoint, "unix:") && !strings.HasPrefix(endpoint, "tcp:") {
		return nil, fmt.Errorf("dial ovsdb %q: endpoint must be unix:PATH or tcp:HOST:PORT", endpoint)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dbModel, err := model.NewClientDBModel("Open_vSwitch", map[string]model.Model{
		vswitch.OpenvSwitchTable: &vswitch.OpenvSwitch{},
		vswitch.BridgeTable:      &vswitch.Bridge{},
		vswitch.PortTable:        &vswitch.Port{},
		vswitch.InterfaceTable:   &vswitch.Interface{},
		vswitch.ControllerTable:  &vswitch.Controller{},
		vswitch.SSLTable:         &vswitch.SSL{},
	})
	if err != nil {
		return nil, fmt.Errorf("dial ovsdb %q: build model: %w", endpoint, err)
	}
	c := &Client{endpoint: endpoint, changed: newNotifier(), closed: make(chan struct{})}
	h := minLevelHandler{Handler: log.With("ovsdb", endpoint).Handler(), min: libovsdbMinLevel}
	lg := logr.FromSlogHandler(h).WithName("libovsdb")
	c.lc, err = client.NewOVSDBClient(dbModel,
		client.WithEndpoint(endpoint),
		client.WithReconnect(connectAttemptTimeout, &reconnectBackoff{b: newBackoff(), closed: c.closed}),
		client.WithLogger(&lg),
	)
	if err != nil {
		return nil, fmt.Errorf("dial ovsdb %q: %w", endpoint, err)
	}
	if err := c.connect(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("dial ovsdb %q: %w", endpoint, err)
	}
	return c, nil
}

func (c *Client) connect(ctx context.Context) error {
	var lastErr error
	err := backoff.Retry(func() error {
		attempt := c.lc.Connect(ctx)
		// An attempt cut short by ctx says only that time ran out, which
		// err says too; the one before it says why the server was not
		// reached (no socket, refused), which is what an operator needs.
		if lastErr == nil || ctx.Err() == nil {
			lastErr = attempt
		}
		return attempt
	}, backoff.WithContext(newBackoff(), ctx))
	if err != nil {
		return fmt.Errorf("connect: %w (last attempt: %w)", err, lastErr)
	}
	// The handler goes on before the monitor so that no update, including
	// the initial dump, slips past WaitOfport and the read-your-writes waits.
	wake := func() { c.changed.notify() }
	c.lc.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc: func(table string, m model.Model) {
			wake()
			c.interfaceEvent(table, nil, m)
		},
		UpdateFunc: func(table string, old, new model.Model) {
			wake()
			c.interfaceEvent(table, old, new)
		},
		DeleteFunc: func(table string, m model.Model) {
			wake()
			c.interfaceEvent(table, m, nil)
		},
	})
	root, br, port, iface, ctl := &vswitch.OpenvSwitch{}, &vswitch.Bridge{}, &vswitch.Port{}, &vswitch.Interface{}, &vswitch.Controller{}
	ssl := &vswitch.SSL{}
	mon := c.lc.NewMonitor(
		// next_cfg, cur_cfg: WaitApplied's handshake with ovs-vswitchd.
		client.WithTable(root, &root.Bridges, &root.OtherConfig, &root.SSL, &root.NextCfg, &root.CurCfg),
		client.WithTable(br, &br.Name, &br.Ports, &br.ExternalIDs, &br.FailMode, &br.Protocols, &br.DatapathType, &br.Controller, &br.DatapathID, &br.OtherConfig),
		client.WithTable(port, &port.Name, &port.Interfaces, &port.Tag, &port.ExternalIDs),
		// statistics: ovs-vswitchd rewrites it every stats-update-interval
		// (5 s by default, never less), for the exporter's port counters.
		client.WithTable(iface, &iface.Name, &iface.Type, &iface.Options, &iface.Ofport, &iface.Error, &iface.ExternalIDs, &iface.Statistics),
		client.WithTable(ctl, &ctl.Target, &ctl.ExternalIDs, &ctl.ConnectionMode),
		client.WithTable(ssl, &ssl.PrivateKey, &ssl.Certificate, &ssl.CaCert, &ssl.ExternalIDs),
	)
	if _, err := c.lc.Monitor(ctx, mon); err != nil {
		return fmt.Errorf("start monitor: %w", err)
	}
	return nil
}

// Close ends the connection and the background reconnects.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		// closed goes first: if libovsdb is between reconnect attempts it
		// has no connection for Close to shut, and only the backoff can
		// stop it.
		close(c.closed)
		c.lc.Close()
	})
}

// Endpoint is the address the client was dialled with.
func (c *Client) Endpoint() string { return c.endpoint }

// Connected reports whether the client has a live connection.
func (c *Client) Connected() bool {
	// libovsdb's Connected() stays true after the server drops the
	// connection (it only clears it on a client-side disconnect); the RPC
	// client, which CurrentEndpoint reports on, is the reliable part.
	return c.lc.Connected() && c.lc.CurrentEndpoint() != ""
}

// OtherConfig returns Open_vSwitch.other_config from the cache.
func (c *Client) OtherConfig() (map[string]string, error) {
	ctx, cancel, err := c.readContext()
	if err != nil {
		return nil, fmt.Errorf("read other_config: %w", err)
	}
	defer cancel()
	root, err := c.root(ctx)
	if err != nil {
		return nil, fmt.Errorf("read other_config: %w", err)
	}
	out := make(map[string]string, len(root.OtherConfig))
	for k, v := range root.OtherConfig {
		out[k] = v
	}
	return out, nil
}

// readContext bounds cache reads made by calls that have no context. A
// disconnected client fails them at once rather than serve a cache that may
// be arbitrarily old.
func (c *Client) readContext() (context.Context, context.CancelFunc, error) {
	if !c.Connected() {
		return nil, nil, errNotConnected
	}
	ctx, cancel := context.WithTimeout(context.Background(), cacheReadTimeout)
	return ctx, cancel, nil
}

// root returns the single Open_vSwitch row.
func (c *Client) root(ctx context.Context) (*vswitch.OpenvSwitch, error) {
	var rows []*vswitch.OpenvSwitch
	if err := c.lc.List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list Open_vSwitch: %w", err)
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("Open_vSwitch table has %d rows, want 1 (was the database initialised with ovs-vsctl init?)", len(rows))
	}
	return rows[0], nil
}

// get fills m from the cache by its UUID or name index; found is false
// when there is no such row.
func (c *Client) get(ctx context.Context, m model.Model) (found bool, err error) {
	err = c.lc.Get(ctx, m)
	if errors.Is(err, client.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// transact runs ops as one transaction and turns per-operation failures into
// one error. Every update and mutate we build names exactly one row by UUID,
// so a count of zero means the row vanished since we read the cache.
func (c *Client) transact(ctx context.Context, ops []ovsdb.Operation) error {
	results, err := c.lc.Transact(ctx, ops...)
	if err != nil && ctx.Err() != nil {
		// libovsdb stops waiting but the request may have gone out, and
		// ovsdb-server, which never learns that no one waits, carries it
		// out when it reads it: a stalled server commits it on resuming.
		// Undo it with a request on this connection, which runs after it
		// (deletePortOps).
		return fmt.Errorf("transact: no answer in time; if the request went out it may still commit: %w", err)
	}
	if err != nil {
		return fmt.Errorf("transact: %w", err)
	}
	opErrs, err := ovsdb.CheckOperationResults(results, ops)
	if err != nil {
		errs := []error{err}
		for _, e := range opErrs {
			errs = append(errs, e)
		}
		return fmt.Errorf("transact: %w", errors.Join(errs...))
	}
	for i, op := range ops {
		if (op.Op == ovsdb.OperationUpdate || op.Op == ovsdb.OperationMutate) && results[i].Count == 0 {
			return fmt.Errorf("transact: %s on %s matched no row: changed concurrently, retry", op.Op, op.Table)
		}
	}
	return nil
}

// waitCache blocks until cond holds on the cache, re-checking on every cache
// event. Mutating calls use it so that a caller reads its own writes: the
// update notification may arrive after the transaction reply.
func (c *Client) waitCache(ctx context.Context, what string, cond func() (bool, error)) error {
	for {
		changed := c.changed.wait()
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, context.Cause(ctx))
		}
	}
}

// notifier wakes every waiter on each cache change: a channel that is closed
// and replaced, so a waiter that took it before checking cannot miss a change.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}

func newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	// libovsdb panics when its reconnect backoff gives up, so it never may.
	b.MaxElapsedTime = 0
	return b
}

// reconnectBackoff is libovsdb's reconnect policy. libovsdb's Close cannot
// stop a reconnect loop that is between attempts, and the loop panics if the
// backoff returns Stop. So the backoff does the waiting itself, where it can
// see the client close, and then ends the loop's goroutine.
type reconnectBackoff struct {
	b      backoff.BackOff
	closed <-chan struct{}
}

func (r *reconnectBackoff) NextBackOff() time.Duration {
	t := time.NewTimer(r.b.NextBackOff())
	defer t.Stop()
	select {
	case <-r.closed:
		runtime.Goexit()
	case <-t.C:
	}
	return 0
}

func (r *reconnectBackoff) Reset() { r.b.Reset() }

// minLevelHandler drops records below min, whatever the wrapped handler's
// level.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithGroup(name), min: h.min}
}

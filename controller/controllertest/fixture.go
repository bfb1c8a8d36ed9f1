package controllertest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/httpapi"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Token is the bearer token of a fixture's API.
const Token = "s3cret"

// Fixture is a controller of a host ("h1" unless StartHost names another)
// running on a fake backend, its API served with Token.
type Fixture struct {
	C    *controller.Controller
	Fake *Fake
	Srv  *httptest.Server
	St   store.Store
	Reg  *prometheus.Registry
	Stop func() // ends Run; the test's cleanup calls it too
	// CheckNetns vets a port's namespace in place of link.CheckNetns
	// (CheckNetns by default); a test may replace it before its first
	// port request.
	CheckNetns func(context.Context, model.Port) (model.Port, error)
	errorLog   *errorLog
}

// LoggedErrors returns the messages the controller logged at ERROR, for
// the tests that an ordinary refusal logs none.
func (f *Fixture) LoggedErrors() []string {
	f.errorLog.mu.Lock()
	defer f.errorLog.mu.Unlock()
	return slices.Clone(f.errorLog.msgs)
}

// errorLog is a slog.Handler that keeps the message and attributes of each
// record at ERROR and drops the rest.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelError }
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler               { return l }
func (l *errorLog) WithGroup(string) slog.Handler                    { return l }

func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, msg)
	return nil
}

// NewFixture starts a fixture on a fresh store.
func NewFixture(t *testing.T) *Fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return StartFixture(t, st)
}

// NewUnenforcingFixture starts a fixture on a fresh store that holds an
// empty security group "web", over a fake that enforces none
// (Unenforcing): a backend without security groups meeting a stored one.
func NewUnenforcingFixture(t *testing.T) *Fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, _, err := st.PutSecurityGroup(context.Background(), model.SecurityGroup{Name: "web", Rules: []model.Rule{}}); err != nil {
		t.Fatal(err)
	}
	fake := NewFake()
	return StartFixtureOn(t, st, fake, Unenforcing{Fake: fake})
}

// StartFixture runs a controller on st with a fresh fake backend and serves its
// API; a second call on the same store is a daemon restart.
func StartFixture(t *testing.T, st store.Store) *Fixture {
	t.Helper()
	fake := NewFake()
	return StartFixtureOn(t, st, fake, fake)
}

// StartFixtureOn is StartFixture with the backend b, which is fake or wraps
// it, and the controller's options opts.
func StartFixtureOn(t *testing.T, st store.Store, fake *Fake, b datapath.Backend, opts ...controller.Option) *Fixture {
	t.Helper()
	return StartHost(t, "h1", st, fake, b, opts...)
}

// HostAddrs are a fixture host's own addresses: loopback and 192.0.2.9,
// which a port forward's host_ip may name.
func HostAddrs() ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.9")}, nil
}

// HostBroadcasts are a fixture host's broadcast addresses: 192.0.2.9's
// subnet's.
func HostBroadcasts() ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("192.0.2.255")}, nil
}

// StartHost is StartFixtureOn for the controller of host (a cluster's
// hosts share st).
func StartHost(t *testing.T, host string, st store.Store, fake *Fake, b datapath.Backend, opts ...controller.Option) *Fixture {
	t.Helper()
	f := &Fixture{Fake: fake, St: st, Reg: prometheus.NewPedanticRegistry(), CheckNetns: CheckNetns, errorLog: &errorLog{}}
	log := slog.New(f.errorLog)
	check := func(ctx context.Context, p model.Port) (model.Port, error) { return f.CheckNetns(ctx, p) }
	// The machine's own addresses are no test's: every host has
	// HostAddrs and HostBroadcasts unless opts say otherwise.
	opts = append([]controller.Option{controller.WithLocalAddrs(HostAddrs), controller.WithBroadcasts(HostBroadcasts)}, opts...)
	c, err := controller.New(st, host, log, controller.NewMetrics(f.Reg, "test"), append(opts, controller.WithNetnsCheck(check))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(context.Context) (datapath.Backend, error) { return b, nil }) }()
	f.Stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(f.Stop)
	for start := time.Now(); c.Ready() != nil; time.Sleep(time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatalf("the controller is not ready after a minute: %v", c.Ready())
		}
	}
	f.C = c
	f.Srv = httptest.NewServer(httpapi.NewHandler(c, f.Reg, "test", Token))
	t.Cleanup(f.Srv.Close)
	return f
}

// Do sends a request with the token and returns the status and the JSON
// object answered, if any.
func (f *Fixture) Do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.Srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// CheckNetns stands in for link.CheckNetns with the fake backend, which
// has no namespaces: any existing path will do as one (e2e/netns_test.go
// tests the real check).
func CheckNetns(_ context.Context, p model.Port) (model.Port, error) {
	if p.Type != v1.PortVeth {
		return p, nil
	}
	if _, err := os.Stat(p.NetnsPath()); err != nil {
		return p, fmt.Errorf("netns %s: %w", p.Netns, datapath.ErrNoNetns)
	}
	return p, nil
}

// StoredPorts is what a restarted daemon would load.
func StoredPorts(t *testing.T, st store.Store) ([]model.Port, error) {
	t.Helper()
	s, err := st.Load(context.Background())
	return s.Ports, err
}

// CreateNetwork stores n as a test's earlier run would have.
func CreateNetwork(st store.Store, n model.Network) error {
	_, _, err := st.CreateNetwork(context.Background(), n)
	return err
}

// PutRouter stores r as a test's earlier run would have.
func PutRouter(st store.Store, r model.Router) error {
	_, _, err := st.PutRouter(context.Background(), r)
	return err
}

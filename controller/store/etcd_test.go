package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// The etcd store's tests: the shared contract and what etcd itself must do
// for it here; concurrency in etcd_race_test.go, the watch in
// etcd_watch_test.go, hosts in etcd_register_test.go, outages in
// etcd_outage_test.go.
//
// `make test` runs every package at once on two cores: nothing here may
// depend on how fast anything happens. Waits are for a condition, with
// patience to spare, and the assertions are about the state reached.

// patience bounds every wait for something that must happen.
const patience = 60 * time.Second

// openEtcd opens a store of its own on the cluster: a fresh prefix, so that
// tests share a cluster without seeing each other. Closed at cleanup. Its
// OpTimeout is generous, so that a loaded machine fails no call; tests of
// outages set their own.
func openEtcd(t *testing.T, cluster *testbed.Etcd, prefix string, tweak ...func(*EtcdConfig)) (*Etcd, *testbed.SyncBuffer) {
	t.Helper()
	log, buf := newLog(t)
	cfg := EtcdConfig{Endpoints: cluster.Endpoints(), Prefix: prefix, Log: log, OpTimeout: 30 * time.Second}
	for _, f := range tweak {
		f(&cfg)
	}
	s, err := OpenEtcd(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, buf
}

func uniquePrefix() string { return "/" + testbed.UniqueName("t-") }

func TestEtcd(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	testStore(t, func(t *testing.T) Store {
		s, _ := openEtcd(t, cluster, uniquePrefix())
		return s
	})
}

// TestEtcdSemantics pins down what the store relies on in etcd (3.4 here):
// comparisons on missing keys and on empty ranges, and transactions nested
// in a transaction (how a delete frees only the keys its port holds).
func TestEtcdSemantics(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	cli := cluster.Client(t)
	ctx := t.Context()
	if _, err := cli.Put(ctx, "/sem/ipam/blue/10.1.0.5", "a"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cmp  clientv3.Cmp
		want bool
	}{
		{"missing key: mod revision 0", clientv3.Compare(clientv3.ModRevision("/sem/topology"), "=", 0), true},
		{"missing key: create revision 0", clientv3.Compare(clientv3.CreateRevision("/sem/none"), "=", 0), true},
		{"missing key: value never equal", clientv3.Compare(clientv3.Value("/sem/none"), "=", ""), false},
		{"empty range: create revision 0", clientv3.Compare(clientv3.CreateRevision("/sem/ipam/red/"), "=", 0).WithPrefix(), true},
		{"non-empty range: create revision not 0", clientv3.Compare(clientv3.CreateRevision("/sem/ipam/blue/"), "=", 0).WithPrefix(), false},
		{"prefix ends at the slash", clientv3.Compare(clientv3.CreateRevision("/sem/ipam/blu/"), "=", 0).WithPrefix(), true},
	} {
		resp, err := cli.Txn(ctx).If(c.cmp).Commit()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Succeeded != c.want {
			t.Errorf("%s: compare %v, want %v", c.name, resp.Succeeded, c.want)
		}
	}

	s := &Etcd{root: "/sem/"}
	commit := func(ops ...clientv3.Op) {
		t.Helper()
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	held := func(key string) bool {
		t.Helper()
		resp, err := cli.Get(ctx, "/sem/ipam/"+key)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) > 0
	}
	commit(clientv3.OpPut("/sem/ipam/blue/mac/02:00:00:00:00:01", "a"))
	commit(s.release("blue/mac/02:00:00:00:00:01", "b"), s.release("blue/mac/02:00:00:00:00:09", "b"))
	if !held("blue/mac/02:00:00:00:00:01") {
		t.Error("another port's release freed a's mac")
	}
	commit(s.release("blue/mac/02:00:00:00:00:01", "a"), s.release("blue/10.1.0.5", "a"))
	if held("blue/mac/02:00:00:00:00:01") || held("blue/10.1.0.5") {
		t.Error("a's release left what a held")
	}
}

// TestEtcdOldPorts: a port stored before ports held their MAC (its record
// and its address only) holds no MAC: another port may take it, and its
// delete does not free what that port holds.
func TestEtcdOldPorts(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	cli := cluster.Client(t)
	prefix := uniquePrefix()
	s, _ := openEtcd(t, cluster, prefix)
	ctx := t.Context()
	if _, _, err := s.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	old := port("old", "blue", "10.1.0.5")
	raw, _ := json.Marshal(old)
	if _, err := cli.Txn(ctx).Then(
		clientv3.OpPut(prefix+"/v1/ports/old", string(raw)),
		clientv3.OpPut(prefix+"/v1/ipam/blue/10.1.0.5", "old"),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	for i, st := range []step{
		{do: loaded("blue#1", "", "old@blue/10.1.0.5/0")},
		{do: createPort(port("x", "blue", "10.1.0.5")), want: ErrAddressInUse},
		{do: createPort(withMAC(port("new", "blue", "10.1.0.6"), old.MAC))},
		{do: deletePort("old")},
		{do: createPort(withMAC(port("x", "blue", "10.1.0.5"), old.MAC)), want: ErrMACInUse,
			msg: "conflict: mac " + old.MAC + " is used by port new in network blue"},
		{do: deleteNetwork("blue"), want: ErrConflict, msg: `conflict: network "blue" is used by ports new`},
		{do: deletePort("new")},
		{do: deleteNetwork("blue")},
	} {
		if err := st.do(ctx, s); !errors.Is(err, st.want) || (st.msg != "" && err.Error() != st.msg) {
			t.Fatalf("step %d: got %v, want %v %q", i, err, st.want, st.msg)
		}
	}
	resp, err := cli.Get(ctx, prefix+"/v1/ipam/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("ipam keys left: %v %v", resp, err)
	}
}

// TestUnavailable: which failures mean "etcd is not there now" (retried,
// ErrUnavailable) and which do not.
func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("put: %w", context.DeadlineExceeded), true},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), true},
		{status.Error(codes.Unknown, "context deadline exceeded"), true}, // the server's end of our deadline
		{rpctypes.ErrNoLeader, true},
		{rpctypes.ErrTimeout, true},
		{context.Canceled, false},
		{status.Error(codes.Unknown, "something else"), false},
		{rpctypes.ErrLeaseNotFound, false},
		{errors.New("decode"), false},
	} {
		if got := unavailable(c.err); got != c.want {
			t.Errorf("unavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestEtcdTLS: a cluster that serves TLS and requires client certificates.
func TestEtcdTLS(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1, testbed.EtcdTLS())
	s, _ := openEtcd(t, cluster, uniquePrefix(), func(c *EtcdConfig) {
		c.CAFile, c.CertFile, c.KeyFile = cluster.CAFile, cluster.CertFile, cluster.KeyFile
	})
	if _, _, err := s.CreateNetwork(t.Context(), network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	_, err := OpenEtcd(t.Context(), EtcdConfig{Endpoints: cluster.Endpoints(), CAFile: cluster.CAFile, OpTimeout: time.Second})
	if err == nil {
		t.Fatal("no client certificate, yet connected")
	}
	t.Logf("without a client certificate: %v", err)
	for _, c := range []struct {
		name string
		cfg  EtcdConfig
		want string
	}{
		{"certificate without key", EtcdConfig{CertFile: cluster.CertFile}, "needs both"},
		{"missing CA file", EtcdConfig{CAFile: cluster.CAFile + ".missing"}, "no such file"},
		{"CA file without PEM", EtcdConfig{CAFile: "/dev/null"}, "no PEM certificate"},
		{"plain endpoint", EtcdConfig{CAFile: cluster.CAFile, Endpoints: []string{"http://127.0.0.1:1"}}, "is not TLS"},
	} {
		if c.cfg.Endpoints == nil {
			c.cfg.Endpoints = cluster.Endpoints()
		}
		if _, err := OpenEtcd(t.Context(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

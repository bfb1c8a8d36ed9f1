package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovn-org/libovsdb/model"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// testContext bounds one test's I/O.
func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func dial(tb testing.TB, s *sandbox) *Client {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := Dial(testContext(tb), s.endpoint(), log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// delBridge removes a test's bridge with the witness tool, since removing
// bridges is not part of the client's job.
func delBridge(tb testing.TB, s *sandbox, name string) {
	tb.Helper()
	tb.Cleanup(func() {
		// --no-wait: on a bridge of 1,000 ports ovs-vswitchd takes longer
		// than ovs-vsctl's timeout to catch up, and nothing here needs it to.
		if _, err := s.vsctl("--no-wait", "--if-exists", "del-br", name); err != nil {
			tb.Error(err)
		}
	})
}

// cachedBridge reads the bridge and its controller targets from the cache.
func cachedBridge(tb testing.TB, c *Client, name string) (*vswitch.Bridge, []string) {
	tb.Helper()
	ctx := testContext(tb)
	br := &vswitch.Bridge{Name: name}
	if found, err := c.get(ctx, br); err != nil || !found {
		tb.Fatalf("bridge %q in cache: found=%v err=%v", name, found, err)
	}
	targets, err := c.controllerTargets(ctx, br)
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(targets)
	return br, targets
}

func TestEnsureBridgeCreateUpdate(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const name = "br-eb"
	delBridge(t, s, name)

	spec := BridgeSpec{
		Name: name, DatapathType: "netdev", FailMode: "secure",
		Protocols: []string{"OpenFlow13"}, Controllers: []string{"tcp:127.0.0.1:6653"},
	}
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	br, targets := cachedBridge(t, c, name)
	if derefString(br.FailMode) != "secure" || br.DatapathType != "netdev" ||
		!slices.Equal(br.Protocols, []string{"OpenFlow13"}) || !slices.Equal(targets, spec.Controllers) ||
		br.ExternalIDs[OwnerKey] != OwnerValue {
		t.Fatalf("cache after create: %+v controllers %v", br, targets)
	}
	wantVsctl(t, s, "[OpenFlow13]", "get", "bridge", name, "protocols")
	wantVsctl(t, s, "secure", "get", "bridge", name, "fail_mode")
	wantVsctl(t, s, "netdev", "get", "bridge", name, "datapath_type")
	wantVsctl(t, s, "ovs-vnet", "get", "bridge", name, "external_ids:"+OwnerKey)
	wantVsctl(t, s, "tcp:127.0.0.1:6653", "get-controller", name)
	// The local port, as ovs-vsctl add-br makes it.
	wantVsctl(t, s, "internal", "get", "interface", name, "type")
	wantVsctl(t, s, "ovs-vnet", "get", "port", name, "external_ids:"+OwnerKey)
	ctlUUIDs := s.mustVsctl(t, "get", "bridge", name, "controller")
	wantVsctl(t, s, "out-of-band", "get", "controller", name, "connection_mode")

	// The same spec again changes nothing, not even the controller rows.
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := s.mustVsctl(t, "get", "bridge", name, "controller"); got != ctlUUIDs {
		t.Fatalf("controller rows replaced on an unchanged spec: %s -> %s", ctlUUIDs, got)
	}

	// A controller row an older version made in band is made anew.
	s.mustVsctl(t, "clear", "controller", name, "connection_mode")
	// EnsureBridge judges the rows as its monitor cache has them.
	waitFor(t, "the cache to see connection_mode cleared", func() bool {
		br, _ := cachedBridge(t, c, name)
		for _, id := range br.Controller {
			ctl := &vswitch.Controller{UUID: id}
			if found, err := c.get(ctx, ctl); err != nil || !found || ctl.ConnectionMode != nil {
				return false
			}
		}
		return len(br.Controller) > 0
	})
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	wantVsctl(t, s, "out-of-band", "get", "controller", name, "connection_mode")
	ctlUUIDs = s.mustVsctl(t, "get", "bridge", name, "controller")

	// other_config keys are set; keys the spec does not name are kept.
	s.mustVsctl(t, "set", "bridge", name, "other_config:theirs=1")
	// EnsureBridge merges into the row as its monitor cache has it.
	waitFor(t, "the cache to hold other_config:theirs", func() bool {
		br, _ := cachedBridge(t, c, name)
		return br.OtherConfig["theirs"] == "1"
	})
	spec.OtherConfig = map[string]string{"hwaddr": "02:00:00:00:00:42"}
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	wantVsctl(t, s, "02:00:00:00:00:42", "get", "bridge", name, "other_config:hwaddr")
	wantVsctl(t, s, "1", "get", "bridge", name, "other_config:theirs")

	spec.FailMode = "standalone"
	spec.Protocols = []string{"OpenFlow10", "OpenFlow13"}
	spec.Controllers = []string{"tcp:127.0.0.1:6655", "tcp:127.0.0.1:6654"}
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	br, targets = cachedBridge(t, c, name)
	if derefString(br.FailMode) != "standalone" || !sameSet(br.Protocols, spec.Protocols) ||
		!slices.Equal(targets, []string{"tcp:127.0.0.1:6654", "tcp:127.0.0.1:6655"}) {
		t.Fatalf("cache after update: %+v controllers %v", br, targets)
	}
	wantVsctl(t, s, "standalone", "get", "bridge", name, "fail_mode")
	wantVsctl(t, s, "[OpenFlow10, OpenFlow13]", "get", "bridge", name, "protocols")
	wantVsctl(t, s, "tcp:127.0.0.1:6654\ntcp:127.0.0.1:6655", "get-controller", name)
	// The replaced rows are gone, the new ones ours.
	wantVsctl(t, s, "ovs-vnet-owner=ovs-vnet\n\novs-vnet-owner=ovs-vnet", "--bare", "--columns=external_ids", "list", "controller")

	// Back to the OVS defaults.
	spec.FailMode, spec.Protocols, spec.Controllers = "", nil, nil
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	br, targets = cachedBridge(t, c, name)
	if br.FailMode != nil || len(br.Protocols) != 0 || len(targets) != 0 {
		t.Fatalf("cache after reset: %+v controllers %v", br, targets)
	}
	wantVsctl(t, s, "[]", "get", "bridge", name, "fail_mode")
	wantVsctl(t, s, "", "get-controller", name)
}

func TestEnsureBridgeRefusesForeign(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const name = "br-foreign"
	delBridge(t, s, name)
	s.mustVsctl(t, "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev", "fail_mode=standalone")
	waitInCache(t, c, &vswitch.Bridge{Name: name})

	err := c.EnsureBridge(ctx, BridgeSpec{Name: name, DatapathType: "netdev", FailMode: "secure"})
	if !errors.Is(err, ErrNotOwned) {
		t.Fatalf("EnsureBridge on a foreign bridge: %v, want ErrNotOwned", err)
	}
	wantVsctl(t, s, "standalone", "get", "bridge", name, "fail_mode")

	err = c.AddPort(ctx, name, PortSpec{Name: "vnt-nope"})
	if !errors.Is(err, ErrNotOwned) {
		t.Fatalf("AddPort on a foreign bridge: %v, want ErrNotOwned", err)
	}
	wantVsctl(t, s, "", "list-ports", name)
}

func TestOtherConfig(t *testing.T) {
	s := sb
	c := dial(t, s)
	s.mustVsctl(t, "set", "Open_vSwitch", ".", "other_config:vnt-test=on")
	t.Cleanup(func() { s.mustVsctl(t, "remove", "Open_vSwitch", ".", "other_config", "vnt-test") })
	err := c.waitCache(testContext(t), "other_config", func() (bool, error) {
		oc, err := c.OtherConfig()
		return oc["vnt-test"] == "on", err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDialFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, "unix:/nonexistent/db.sock", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Dial without a server: %v, want a deadline error with the last attempt's", err)
	}
	t.Log(err)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Dial outlived its context by far: %v", d)
	}
	if _, err := Dial(ctx, "ssl:127.0.0.1:6640", nil); err == nil {
		t.Fatal("Dial accepted an ssl endpoint it has no TLS config for")
	}
}

// waitInCache waits until a row that another tool wrote reaches the cache.
func waitInCache(tb testing.TB, c *Client, m model.Model) {
	tb.Helper()
	ctx := testContext(tb)
	err := c.waitCache(ctx, fmt.Sprintf("%+v", m), func() (bool, error) { return c.get(ctx, m) })
	if err != nil {
		tb.Fatal(err)
	}
}

// wantVsctl checks the witness's view of the database.
func wantVsctl(tb testing.TB, s *sandbox, want string, args ...string) {
	tb.Helper()
	// ovs-vsctl quotes a string only when it must; compare without quotes.
	if got := strings.ReplaceAll(s.mustVsctl(tb, args...), `"`, ""); got != want {
		tb.Fatalf("ovs-vsctl %s = %q, want %q", strings.Join(args, " "), got, want)
	}
}

func TestDatapathID(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const name = "br-dpid"
	delBridge(t, s, name)
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: name, DatapathType: "netdev"}); err != nil {
		t.Fatal(err)
	}
	dpid, err := c.DatapathID(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	wantVsctl(t, s, fmt.Sprintf("%016x", dpid), "get", "bridge", name, "datapath_id")
}

package ovsdb

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// ensureTestBridge makes an owned netdev bridge that the test removes at its end.
func ensureTestBridge(tb testing.TB, s *sandbox, c *Client, name string) {
	tb.Helper()
	delBridge(tb, s, name)
	if err := c.EnsureBridge(testContext(tb), BridgeSpec{Name: name, DatapathType: "netdev", FailMode: "secure"}); err != nil {
		tb.Fatal(err)
	}
}

func TestPortLifecycle(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const br, other, name = "br-port", "br-port2", "vnt-a"
	ensureTestBridge(t, s, c, br)
	ensureTestBridge(t, s, c, other)
	s.veth(t, name)

	spec := PortSpec{Name: name, Tag: 10, ExternalIDs: map[string]string{"vnet-port": "web1"}}
	if err := c.AddPort(ctx, br, spec); err != nil {
		t.Fatal(err)
	}
	ofport, err := c.WaitOfport(ctx, name)
	if err != nil || ofport <= 0 {
		t.Fatalf("WaitOfport = %d, %v; want > 0", ofport, err)
	}
	wantVsctl(t, s, "10", "get", "port", name, "tag")
	wantVsctl(t, s, "web1", "get", "interface", name, "external_ids:vnet-port")
	wantVsctl(t, s, "ovs-vnet", "get", "port", name, "external_ids:"+OwnerKey)
	wantVsctl(t, s, "ovs-vnet", "get", "interface", name, "external_ids:"+OwnerKey)
	portUUID := s.mustVsctl(t, "get", "port", name, "_uuid")

	// Re-adding with a new tag and ids updates the same rows in place.
	spec.Tag = 20
	spec.ExternalIDs = map[string]string{"vnet-port": "web2"}
	if err := c.AddPort(ctx, br, spec); err != nil {
		t.Fatal(err)
	}
	wantVsctl(t, s, "20", "get", "port", name, "tag")
	wantVsctl(t, s, "web2", "get", "port", name, "external_ids:vnet-port")
	if got := s.mustVsctl(t, "get", "port", name, "_uuid"); got != portUUID {
		t.Fatalf("port row replaced: %s -> %s", portUUID, got)
	}
	if again, err := c.WaitOfport(ctx, name); err != nil || again != ofport {
		t.Fatalf("ofport after update = %d, %v; want %d", again, err, ofport)
	}
	// A third identical add is a no-op, and a port on another bridge is refused.
	if err := c.AddPort(ctx, br, spec); err != nil {
		t.Fatal(err)
	}
	if err := c.AddPort(ctx, other, spec); err == nil || !strings.Contains(err.Error(), "another bridge") {
		t.Fatalf("AddPort of a port on another bridge: %v", err)
	}

	ports, err := c.OwnedPorts(br)
	if err != nil {
		t.Fatal(err)
	}
	want := Port{Name: name, Tag: 20, Ofport: ofport, ExternalIDs: map[string]string{"vnet-port": "web2", OwnerKey: OwnerValue}}
	if len(ports) != 1 || ports[0].Name != want.Name || ports[0].Tag != want.Tag ||
		ports[0].Ofport != want.Ofport || !maps.Equal(ports[0].ExternalIDs, want.ExternalIDs) {
		t.Fatalf("OwnedPorts = %+v, want [%+v]", ports, want)
	}

	// Another tool's port is never ours to change or delete.
	const foreign = "vnt-f"
	s.veth(t, foreign)
	s.mustVsctl(t, "add-port", br, foreign)
	waitInCache(t, c, &vswitch.Port{Name: foreign})
	if err := c.DeletePort(ctx, br, foreign); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("DeletePort of a foreign port: %v, want ErrNotOwned", err)
	}
	if err := c.AddPort(ctx, br, PortSpec{Name: foreign, Tag: 5}); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("AddPort over a foreign port: %v, want ErrNotOwned", err)
	}
	wantVsctl(t, s, "[]", "get", "port", foreign, "tag")
	if ports, err := c.OwnedPorts(br); err != nil || len(ports) != 1 {
		t.Fatalf("OwnedPorts with a foreign port = %+v, %v; want only %s", ports, err, name)
	}

	// The bridge's local port is the bridge's.
	if err := c.AddPort(ctx, br, PortSpec{Name: br}); err == nil {
		t.Fatal("AddPort accepted the bridge's local port")
	}
	if err := c.DeletePort(ctx, br, br); err == nil {
		t.Fatal("DeletePort removed the bridge's local port")
	}

	for range 2 {
		if err := c.DeletePort(ctx, br, name); err != nil {
			t.Fatal(err)
		}
	}
	wantVsctl(t, s, foreign, "list-ports", br)
	if out, err := s.vsctl("get", "interface", name, "name"); err == nil {
		t.Fatalf("interface %s still in the database: %s", name, out)
	}
	if ports, err := c.OwnedPorts(br); err != nil || len(ports) != 0 {
		t.Fatalf("OwnedPorts after delete = %+v, %v; want none", ports, err)
	}
}

func TestWaitOfportNoDevice(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const br, name = "br-nodev", "vnt-missing"
	ensureTestBridge(t, s, c, br)
	if err := c.AddPort(ctx, br, PortSpec{Name: name}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.DeletePort(testContext(t), br, name); err != nil {
			t.Error(err)
		}
	})
	ofport, err := c.WaitOfport(ctx, name)
	if err == nil || !strings.Contains(err.Error(), "No such device") {
		t.Fatalf("WaitOfport of a missing device = %d, %v; want an error with Interface.error", ofport, err)
	}
	t.Log(err)
	if ports, err := c.OwnedPorts(br); err != nil || len(ports) != 1 || ports[0].Ofport != -1 {
		t.Fatalf("OwnedPorts = %+v, %v; want %s with ofport -1", ports, err, name)
	}
}

func TestWaitOfportEndsWithContext(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.WaitOfport(ctx, "vnt-never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitOfport of an interface that never comes: %v, want a deadline error", err)
	}
}

// TestTunnelPortOptions: a port's interface type and options are set on
// insert, compared on a repeat (no transaction when they match, so the
// interface keeps its ofport), and changed in place.
func TestTunnelPortOptions(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const br, name = "br-tun", "vnt-tun"
	ensureTestBridge(t, s, c, br)
	spec := PortSpec{Name: name, Type: "vxlan", ExternalIDs: map[string]string{"vnet-tunnel": "vxlan"},
		Options: map[string]string{"remote_ip": "flow", "key": "flow", "local_ip": "10.99.0.1"}}
	if err := c.AddPort(ctx, br, spec); err != nil {
		t.Fatal(err)
	}
	ofport, err := c.WaitOfport(ctx, name)
	if err != nil || ofport <= 0 {
		t.Fatalf("WaitOfport = %d, %v", ofport, err)
	}
	wantVsctl(t, s, "{key=flow, local_ip=10.99.0.1, remote_ip=flow}", "get", "interface", name, "options")
	wantVsctl(t, s, "vxlan", "get", "interface", name, "type")
	ports, err := c.OwnedPorts(br)
	if err != nil || len(ports) != 1 || ports[0].Type != "vxlan" || ports[0].Ofport != ofport {
		t.Fatalf("OwnedPorts = %+v, %v", ports, err)
	}
	uuid := s.mustVsctl(t, "get", "interface", name, "_uuid")
	// Identical: nothing to send. The cache must hold the options for this.
	ops, err := c.portOps(ctx, mustBridge(t, c, br), spec)
	if err != nil || len(ops) != 0 {
		t.Fatalf("repeat of the same spec: %d ops, %v; want none", len(ops), err)
	}
	spec.Options = map[string]string{"remote_ip": "flow", "key": "flow", "local_ip": "10.99.0.7"}
	if err := c.AddPort(ctx, br, spec); err != nil {
		t.Fatal(err)
	}
	wantVsctl(t, s, "{key=flow, local_ip=10.99.0.7, remote_ip=flow}", "get", "interface", name, "options")
	if got := s.mustVsctl(t, "get", "interface", name, "_uuid"); got != uuid {
		t.Errorf("interface row replaced: %s -> %s", uuid, got)
	}
	if err := c.DeletePort(ctx, br, name); err != nil {
		t.Fatal(err)
	}
}

func mustBridge(t *testing.T, c *Client, name string) *vswitch.Bridge {
	t.Helper()
	br, err := c.ownedBridge(testContext(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return br
}

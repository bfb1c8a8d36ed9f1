package ovsdb

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRebindInterface: the interface hooks hear an interface come and
// go; WaitApplied returns once ovs-vswitchd has caught up (cur_cfg, by
// ovs-vsctl); a port deleted and added again with OfportRequest gets its
// old ofport back and is bound to the device made again (promiscuous).
func TestRebindInterface(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const br, name = "br-iface", "vnt-i"
	ensureTestBridge(t, s, c, br)
	veth := func() {
		t.Helper()
		if _, err := s.ip("link", "add", name, "type", "veth", "peer", "name", name+"p"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ip("link", "set", name, "up"); err != nil {
			t.Fatal(err)
		}
	}
	veth()
	t.Cleanup(func() { _, _ = s.ip("link", "del", name) })
	changed := make(chan struct{}, 1)
	c.OnInterfaceChange(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})

	spec := PortSpec{Name: name}
	if err := c.AddPort(ctx, br, spec); err != nil {
		t.Fatal(err)
	}
	ofport, err := c.WaitOfport(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if iface, found, err := c.Interface(ctx, name); err != nil || !found || iface.Ofport != ofport || iface.Error != "" {
		t.Fatalf("Interface = %+v, %v, %v; want ofport %d", iface, found, err, ofport)
	}
	select {
	case <-changed:
	default:
		t.Fatal("no interface hook call for the new port")
	}

	// The device going is a link event (datapath/link/watch.go), not the
	// hooks' business; the interface going is.
	if _, err := s.ip("link", "del", name); err != nil {
		t.Fatal(err)
	}
	veth()
	if err := c.DeletePort(ctx, br, name); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(20 * time.Second):
		t.Fatal("no interface hook call in 20 s for the interface deleted")
	}
	if err := c.WaitApplied(ctx); err != nil {
		t.Fatal(err)
	}
	cur, _ := strconv.Atoi(s.mustVsctl(t, "get", "Open_vSwitch", ".", "cur_cfg"))
	next, _ := strconv.Atoi(s.mustVsctl(t, "get", "Open_vSwitch", ".", "next_cfg"))
	if cur < next {
		t.Fatalf("WaitApplied returned at cur_cfg %d, next_cfg %d", cur, next)
	}
	spec.OfportRequest = ofport
	if err := c.AddPort(ctx, br, spec); err != nil {
		t.Fatal(err)
	}
	if again, err := c.WaitOfport(ctx, name); err != nil || again != ofport {
		t.Fatalf("ofport after the re-add = %d, %v; want %d", again, err, ofport)
	}
	wantVsctl(t, s, strconv.Itoa(ofport), "get", "interface", name, "ofport_request")
	if out, err := s.ip("-d", "link", "show", name); err != nil || !strings.Contains(out, "promiscuity 1") {
		t.Fatalf("%s not taken by ovs-vswitchd: %v\n%s", name, err, out)
	}
}

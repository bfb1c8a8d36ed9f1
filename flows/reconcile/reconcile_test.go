package reconcile

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

var space = CookieSpace{Value: 0x7600000000000000, Mask: 0xff00000000000000}

// flowSet is n flows in table 0, each matching one source MAC and sending to port 1.
func flowSet(n int, cookie uint64) []Flow {
	flows := make([]Flow, n)
	for i := range flows {
		mac := net.HardwareAddr{0x02, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		flows[i] = Flow{
			Table: 0, Priority: 100, Cookie: cookie,
			Match: openflow.Match{Fields: []openflow.OXM{openflow.EthSrc(mac)}},
			Instructions: []openflow.Instruction{openflow.ApplyActions{Actions: []openflow.Action{
				openflow.ActionOutput{Port: 1, MaxLen: 0},
			}}},
		}
	}
	return flows
}

func TestCookieLayout(t *testing.T) {
	c := space.Cookie(3, 0xdeadbeef, 7)
	if c != 0x7603deadbeef0007 || !space.Owns(c) {
		t.Fatalf("cookie %#x", c)
	}
	if kind, obj, gen := ParseCookie(c); kind != 3 || obj != 0xdeadbeef || gen != 7 {
		t.Fatalf("parsed %d %#x %d", kind, obj, gen)
	}
}

func TestDiffIsMinimal(t *testing.T) {
	base := flowSet(3, space.Value|1)
	installed := make([]openflow.FlowStats, len(base))
	for i, f := range base {
		// The switch reports the match in its own order and with a redundant mask.
		m := f.Match
		m.Fields = append([]openflow.OXM(nil), m.Fields...)
		m.Fields[0].Mask = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		installed[i] = openflow.FlowStats{TableID: f.Table, Priority: f.Priority, Cookie: f.Cookie, Match: m, Instructions: f.Instructions}
	}
	installed = append(installed, openflow.FlowStats{TableID: 0, Priority: 1, Cookie: 0x1}) // foreign

	plan, err := Diff(space, Desired{Flows: base}, Installed{Flows: installed})
	if err != nil || plan.Len() != 0 {
		t.Fatalf("unchanged set: plan %+v, %v", plan, err)
	}
	changed := flowSet(3, space.Value|1)
	changed[0].Cookie = space.Value | 2                                             // owner changed → add (replace)
	changed[1].Instructions = []openflow.Instruction{openflow.ApplyActions{}}       // same owner → modify
	changed = changed[:2]                                                           // third gone → delete
	changed = append(changed, Flow{Table: 1, Priority: 5, Cookie: space.Value | 3}) // new → add
	plan, err = Diff(space, Desired{Flows: changed}, Installed{Flows: installed})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Add) != 2 || len(plan.Modify) != 1 || len(plan.Delete) != 1 {
		t.Fatalf("plan: %d add, %d modify, %d delete", len(plan.Add), len(plan.Modify), len(plan.Delete))
	}
	if d := plan.Delete[0]; d.Cookie != installed[2].Cookie || d.CookieMask != ^uint64(0) || d.Command != openflow.FlowDeleteStrict {
		t.Fatalf("delete must be strict and pinned to our cookie: %+v", d)
	}
	if _, err := Diff(space, Desired{Flows: []Flow{{Cookie: 0x1}}}, Installed{}); err == nil {
		t.Fatal("a desired flow outside our cookie space was accepted")
	}
	if _, err := Diff(space, Desired{Flows: append(flowSet(1, space.Value), flowSet(1, space.Value|9)...)}, Installed{}); err == nil {
		t.Fatal("two desired flows with one key were accepted")
	}
}

// TestAgainstOVS installs 10,000 flows in one bundle, checks them with
// ovs-ofctl, reconnects and resyncs without a single change, and shows that a
// bundle with one bad flow changes nothing. A foreign flow stays throughout.
func TestAgainstOVS(t *testing.T) {
	box := ovsBridge(t)
	box.Ofctl(t, "add-flow", "br0", "cookie=0x1,priority=1,actions=drop")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mgmt := box.Mgmt("br0")

	conn, err := ofconn.Dial(ctx, mgmt, ofconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	desired := flowSet(10000, space.Value|1)
	res, err := New(conn, space, NewMetrics(prometheus.NewRegistry())).Sync(ctx, Desired{Flows: desired})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first sync: %d flows in %v", len(res.Plan.Add), res.Took)
	if len(res.Plan.Add) != 10000 || len(res.Plan.Modify)+len(res.Plan.Delete) != 0 {
		t.Fatalf("first sync: %+v", res)
	}
	dump := box.Ofctl(t, "dump-flows", "br0")
	if n := strings.Count(dump, "cookie=0x7600000000000001"); n != 10000 {
		t.Fatalf("ovs-ofctl shows %d of our flows, want 10000", n)
	}
	if !strings.Contains(dump, "cookie=0x1,") {
		t.Fatal("foreign flow gone")
	}
	if !strings.Contains(dump, "priority=100,dl_src=02:00:00:00:27:0f actions=output:1") {
		t.Fatalf("flow 9999 not as expected:\n%.500s", dump)
	}

	// A new session (a restarted controller) finds nothing to do.
	conn.Close()
	conn, err = ofconn.Dial(ctx, mgmt, ofconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := New(conn, space, NewMetrics(prometheus.NewRegistry()))
	if res, err = b.Sync(ctx, Desired{Flows: desired}); err != nil || res.Plan.Len() != 0 {
		t.Fatalf("resync after reconnect: %+v, %v", res, err)
	}

	// One bad flow (goto_table must go forward) spoils the whole bundle.
	bad := append(flowSet(10, space.Value|2), Flow{Table: 5, Priority: 1, Cookie: space.Value | 2,
		Instructions: []openflow.Instruction{openflow.GotoTable{Table: 1}}})
	_, err = b.Sync(ctx, Desired{Flows: bad})
	var rerr *ofconn.RequestError
	if !errors.As(err, &rerr) {
		t.Fatalf("bad bundle: want a switch error, got %v", err)
	}
	if n := strings.Count(box.Ofctl(t, "dump-flows", "br0"), "cookie=0x7600000000000001"); n != 10000 {
		t.Fatalf("after a failed bundle ovs-ofctl shows %d of our flows, want the 10000 from before", n)
	}
}

// ovsBridge starts a sandbox with a secure-mode OpenFlow 1.3 bridge br0.
func ovsBridge(t *testing.T) *testbed.Sandbox {
	t.Helper()
	box := testbed.StartSandbox(t, "../..", "")
	box.Vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail_mode=secure",
		"protocols=OpenFlow13", "other_config:datapath-id=00000000000000b0")
	return box
}

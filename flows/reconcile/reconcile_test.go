package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset/flowsettest"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

var space = flowset.CookieSpace{Value: 0x7600000000000000, Mask: 0xff00000000000000}

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
	desired := flowsettest.Flows(10000, space.Value|1)
	res, err := New(conn, space, NewMetrics(prometheus.NewRegistry())).Sync(ctx, flowset.Desired{Flows: desired})
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
	if res, err = b.Sync(ctx, flowset.Desired{Flows: desired}); err != nil || res.Plan.Len() != 0 {
		t.Fatalf("resync after reconnect: %+v, %v", res, err)
	}

	// One bad flow (goto_table must go forward) spoils the whole bundle.
	bad := append(flowsettest.Flows(10, space.Value|2), flowset.Flow{Table: 5, Priority: 1, Cookie: space.Value | 2,
		Instructions: []openflow.Instruction{openflow.GotoTable{Table: 1}}})
	_, err = b.Sync(ctx, flowset.Desired{Flows: bad})
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

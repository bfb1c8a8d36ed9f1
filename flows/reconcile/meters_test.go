package reconcile

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset/flowsettest"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// metered is a port's share of a desired state in these tests: its flow,
// which goes through its meter, and the meter.
func metered(i int, rate uint32) flowset.Desired {
	f := flowsettest.Flows(i+1, space.Value|uint64(i+1))[i]
	id := space.Meter(1, uint16(i+1))
	f.Instructions = append([]openflow.Instruction{openflow.MeterInstruction{MeterID: id}}, f.Instructions...)
	return flowset.Desired{Flows: []flowset.Flow{f}, Meters: []flowset.Meter{{ID: id, Rate: rate, Burst: 2 * rate}}}
}

func both(a, b flowset.Desired) flowset.Desired {
	return flowset.Desired{Flows: append(a.Flows, b.Flows...), Meters: append(a.Meters, b.Meters...)}
}

// TestMetersAgainstOVS: meters come and go with the flows that use them —
// at a sync, which also leaves a foreign meter alone and sends nothing for
// meters as desired; at a change, where a meter an earlier failure left
// behind does not fail the add; at a detach and an attach of the same
// meter in one bundle, which keeps it with the new flow; and at a change
// the switch refuses, which takes back the meter it added.
func TestMetersAgainstOVS(t *testing.T) {
	box := ovsBridge(t)
	box.Ofctl(t, "add-meter", "br0", "meter=9,pktps,band=type=drop,rate=5")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := ofconn.Dial(ctx, box.Mgmt("br0"), ofconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := New(conn, space, NewMetrics(prometheus.NewRegistry()))
	meters := func() string { return box.Ofctl(t, "dump-meters", "br0") }
	has := func(i int) bool {
		return strings.Contains(meters(), "meter="+itoa(space.Meter(1, uint16(i+1)))+" ")
	}

	one, two := metered(0, 10), metered(1, 10)
	if res, err := b.Sync(ctx, both(one, two)); err != nil || len(res.Plan.MeterAdd) != 2 {
		t.Fatalf("sync: %+v, %v", res.Plan, err)
	}
	if !has(0) || !has(1) || !strings.Contains(meters(), "meter=9 ") {
		t.Fatalf("meters after the sync:\n%s", meters())
	}
	if res, err := b.Sync(ctx, both(one, two)); err != nil || res.Plan.Len() != 0 {
		t.Fatalf("resync: %+v, %v", res.Plan, err)
	}
	if res, err := b.Sync(ctx, both(one, metered(1, 20))); err != nil || len(res.Plan.MeterModify) != 1 || res.Plan.Len() != 1 {
		t.Fatalf("sync of another rate: %+v, %v", res.Plan, err)
	}
	if !strings.Contains(meters(), "rate=20 burst_size=40") {
		t.Fatalf("meters after the modify:\n%s", meters())
	}
	// Two goes: its flow and then its meter.
	if res, err := b.Sync(ctx, one); err != nil || len(res.Plan.Delete) != 1 || len(res.Plan.MeterDelete) != 1 {
		t.Fatalf("sync without two: %+v, %v", res.Plan, err)
	}
	if has(1) || !has(0) || !strings.Contains(meters(), "meter=9 ") {
		t.Fatalf("meters after two went:\n%s", meters())
	}

	// A meter left behind (two's, as if its delete had failed) is
	// replaced by the change that wants it.
	box.Ofctl(t, "add-meter", "br0", "meter="+itoa(space.Meter(1, 2))+",pktps,band=type=drop,rate=1")
	if _, err := change(ctx, b, one, both(one, two)); err != nil {
		t.Fatalf("attach over a leftover meter: %v", err)
	}
	if !strings.Contains(meters(), "rate=10 burst_size=20") || !strings.Contains(box.Ofctl(t, "dump-flows", "br0"), "meter:"+itoa(space.Meter(1, 2))) {
		t.Fatalf("after the attach:\nmeters %s\nflows %s", meters(), box.Ofctl(t, "dump-flows", "br0"))
	}

	// Detach two and attach its successor, with the same meter and
	// another flow, in one bundle: the meter stays, the new flow has it.
	next := metered(1, 10)
	next.Flows[0].Priority = 101
	detach, err := b.Submit(both(one, two), one)
	if err != nil {
		t.Fatal(err)
	}
	attach, err := b.Submit(one, both(one, next))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Pending{detach, attach} {
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	flows := box.Ofctl(t, "dump-flows", "br0")
	if !has(1) || !strings.Contains(flows, "priority=101") || strings.Contains(flows, "priority=100,dl_src=02:00:00:00:00:01") {
		t.Fatalf("after detach and attach in one bundle:\nmeters %s\nflows %s", meters(), flows)
	}
	if res, err := b.Sync(ctx, both(one, next)); err != nil || res.Plan.Len() != 0 {
		t.Fatalf("resync: %+v, %v", res.Plan, err)
	}

	// A change the switch refuses (its flow outputs to a group the
	// bridge does not have) takes back the meter it added before its
	// bundle, and leaves alone those that were there.
	bad := metered(2, 10)
	bad.Flows[0].Instructions = []openflow.Instruction{openflow.ApplyActions{Actions: []openflow.Action{
		openflow.ActionGroup{GroupID: space.Group(77)}}}}
	if _, err := change(ctx, b, both(one, next), both(both(one, next), bad)); err == nil {
		t.Fatal("the switch took a flow to a group it does not have")
	}
	if has(2) || !has(0) || !has(1) {
		t.Fatalf("meters after the refused change:\n%s", meters())
	}
	if flows := box.Ofctl(t, "dump-flows", "br0"); strings.Count(flows, "cookie=") != 2 {
		t.Fatalf("flows after the refused change:\n%s", flows)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

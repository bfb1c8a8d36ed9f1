package reconcile

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset/flowsettest"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// TestChangeAgainstOVS applies incremental changes with groups, checks them
// with ovs-ofctl, and resyncs without a change: the groups encode as OVS
// reports them. A foreign group stays.
func TestChangeAgainstOVS(t *testing.T) {
	box := ovsBridge(t)
	box.Ofctl(t, "add-group", "br0", "group_id=9,type=all,bucket=output:1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := ofconn.Dial(ctx, box.Mgmt("br0"), ofconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := New(conn, space, NewMetrics(prometheus.NewRegistry()))

	flood := flowsettest.Flows(1, space.Value|1)[0]
	flood.Instructions = []openflow.Instruction{openflow.ApplyActions{Actions: []openflow.Action{openflow.ActionGroup{GroupID: space.Group(1)}}}}
	one := flowset.Desired{Flows: []flowset.Flow{flood}, Groups: []flowset.Group{flowsettest.FloodGroup(space, 1, 1)}}
	two := flowset.Desired{Flows: []flowset.Flow{flood}, Groups: []flowset.Group{flowsettest.FloodGroup(space, 1, 1, 2)}}
	if _, err := change(ctx, b, flowset.Desired{}, one); err != nil {
		t.Fatal(err)
	}
	res, err := change(ctx, b, one, two)
	if err != nil || res.Plan.Len() != 1 || len(res.Plan.GroupModify) != 1 {
		t.Fatalf("add a bucket: %+v, %v", res.Plan, err)
	}
	groups := box.Ofctl(t, "dump-groups", "br0")
	if !strings.Contains(groups, "group_id=1979711489,type=all,bucket=actions=output:1,bucket=actions=output:2") ||
		!strings.Contains(groups, "group_id=9,") {
		t.Fatalf("groups:\n%s", groups)
	}
	if res, err := b.Sync(ctx, two); err != nil || res.Plan.Len() != 0 {
		t.Fatalf("resync: %+v, %v", res.Plan, err)
	}
	if _, err := change(ctx, b, two, flowset.Desired{}); err != nil {
		t.Fatal(err)
	}
	if groups := box.Ofctl(t, "dump-groups", "br0"); strings.Contains(groups, "1979711489") || !strings.Contains(groups, "group_id=9,") {
		t.Fatalf("after removal:\n%s", groups)
	}
}

// TestSubmitKeepsOrderUnderConcurrency submits twenty ports' changes, each
// adding its flow and a bucket to one flood group, in order, then waits for
// them all at once: the bundles they share must apply them in submission
// order, so the group ends with every bucket, and fewer bundles than
// changes go out.
func TestSubmitKeepsOrderUnderConcurrency(t *testing.T) {
	box := ovsBridge(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := ofconn.Dial(ctx, box.Mgmt("br0"), ofconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reg := prometheus.NewRegistry()
	b := New(conn, space, NewMetrics(reg))

	const ports = 20
	flows := flowsettest.Flows(ports, space.Value|1)
	var pending []*Pending
	before := flowset.Desired{}
	for i := range ports {
		var buckets []uint32
		for p := range i + 1 {
			buckets = append(buckets, uint32(p+1))
		}
		after := flowset.Desired{Flows: flows[:i+1], Groups: []flowset.Group{flowsettest.FloodGroup(space, 1, buckets...)}}
		p, err := b.Submit(before, after)
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
		before = after
	}
	errs := make(chan error, ports)
	for _, p := range pending {
		go func() {
			_, err := p.Wait(ctx)
			errs <- err
		}()
	}
	for range ports {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if res, err := b.Sync(ctx, before); err != nil || res.Plan.Len() != 0 {
		t.Fatalf("the switch differs from the last change: %+v, %v", res.Plan, err)
	}
	bundles := histogramCount(t, reg, "ovs_vnet_openflow_bundle_duration_seconds")
	t.Logf("%d changes went out in %d bundles", ports, bundles)
	if bundles >= ports {
		t.Fatalf("%d bundles for %d changes: none were shared", bundles, ports)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// change submits a change and waits for it.
func change(ctx context.Context, b *Bridge, before, after flowset.Desired) (Result, error) {
	p, err := b.Submit(before, after)
	if err != nil {
		return Result{}, err
	}
	return p.Wait(ctx)
}

package ovs

import (
	"context"
	"fmt"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/ovs/unixctl"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/trace"
)

// Flows implements datapath.FlowLister: our flows on the integration bridge
// with their counters, each named by the object its cookie says owns it, in
// table order and, within a table, highest priority first (the order OVS
// matches them in).
func (b *Backend) Flows(ctx context.Context, s datapath.State) ([]datapath.Flow, error) {
	stats, err := b.ourFlows(ctx)
	if err != nil {
		return nil, fmt.Errorf("list flows: %w", err)
	}
	owners := pipeline.NewOwners(b.inspected(s))
	out := make([]datapath.Flow, 0, len(stats))
	for _, f := range stats {
		owner, _ := owners.Of(f.Cookie)
		fl := datapath.Flow{
			OwnerKind: owner.Kind, Owner: owner.Name, Host: owner.Host,
			Table: f.TableID, TableName: pipeline.StageName(f.TableID), Priority: f.Priority,
			Cookie: fmt.Sprintf("%#x", f.Cookie), Packets: f.PacketCount, Bytes: f.ByteCount,
			Text: openflow.FormatFlowStats(f),
		}
		if reason, ok := b.dropReasons.of(f.TableID, f.Priority); ok && len(f.Instructions) == 0 {
			fl.Drop = reason
		}
		out = append(out, fl)
	}
	slices.SortStableFunc(out, func(x, y datapath.Flow) int {
		if x.Table != y.Table {
			return int(x.Table) - int(y.Table)
		}
		return int(y.Priority) - int(x.Priority)
	})
	return out, nil
}

// Trace implements datapath.Tracer: the packet goes through the bridge's
// real tables with ofproto/trace (nothing is sent on any port), and the
// answer is mapped to the objects of s.
func (b *Backend) Trace(ctx context.Context, s datapath.State, q trace.Query) (trace.Result, error) {
	m := b.inspected(s)
	packet, err := trace.OVSPacket(q, m)
	if err != nil {
		return trace.Result{}, fmt.Errorf("trace: %w", err)
	}
	ctl, err := b.controlSocket()
	if err != nil {
		return trace.Result{}, fmt.Errorf("trace: %w", err)
	}
	raw, err := unixctl.Call(ctx, ctl, "ofproto/trace", b.bridge, packet)
	if err != nil {
		return trace.Result{}, fmt.Errorf("trace %s: %w", packet, err)
	}
	return trace.ExplainOVS(q, m, packet, raw)
}

// inspected is the model s stands for, with the remote ports that get flows
// (datapath.SelectRemote), to name what the flows and traces meet.
func (b *Backend) inspected(s datapath.State) pipeline.Model {
	kept, _ := datapath.SelectRemote(b.self(), s.Ports, s.Remote)
	return pipeline.Model{Networks: s.Networks, Routers: s.Routers, Ports: s.Ports, Remote: kept}
}

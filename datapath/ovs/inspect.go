package ovs

import (
	"context"
	"fmt"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/ovs/unixctl"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Flows implements datapath.FlowLister: our flows on the integration bridge
// with their counters, each named by the object its cookie says owns it, in
// table order and, within a table, highest priority first (the order OVS
// matches them in).
func (b *Backend) Flows(ctx context.Context, s datapath.State) ([]v1.Flow, error) {
	stats, err := b.ourFlows(ctx)
	if err != nil {
		return nil, fmt.Errorf("list flows: %w", err)
	}
	owners := pipeline.NewOwners(pipelineModel(b.inspected(s)))
	out := make([]v1.Flow, 0, len(stats))
	for _, f := range stats {
		owner, _ := owners.Of(f.Cookie)
		fl := v1.Flow{
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
	slices.SortStableFunc(out, func(x, y v1.Flow) int {
		if x.Table != y.Table {
			return int(x.Table) - int(y.Table)
		}
		return int(y.Priority) - int(x.Priority)
	})
	return out, nil
}

// Trace implements datapath.Tracer: the packet goes through the bridge's
// real tables with ofproto/trace (nothing is sent on any port), and the
// answer is mapped to the objects of s. A query without From is a packet
// the host sends into a network (fromHost): the controller's trace from
// outside, once the NAT translated it.
func (b *Backend) Trace(ctx context.Context, s datapath.State, q v1.Query) (v1.Result, error) {
	s = b.inspected(s)
	var packet string
	var err error
	if fromHost(q) {
		packet, err = hostPacket(q, s, model.HostMAC(b.bridge))
	} else {
		packet, err = tracePacket(q, s)
	}
	if err != nil {
		return v1.Result{}, fmt.Errorf("trace: %w", err)
	}
	ctl, err := b.controlSocket()
	if err != nil {
		return v1.Result{}, fmt.Errorf("trace: %w", err)
	}
	raw, err := unixctl.Call(ctx, ctl, "ofproto/trace", append([]string{b.bridge, packet}, ctNext()...)...)
	if err != nil {
		return v1.Result{}, fmt.Errorf("trace %s: %w", packet, err)
	}
	return explainTrace(q, s, packet, raw)
}

// pipelineModel is what of the desired state the flows depend on.
func pipelineModel(s datapath.State) pipeline.Model {
	return pipeline.Model{Networks: s.Networks, Routers: s.Routers, Ports: s.Ports, Remote: s.Remote, Policy: s.Policy, NAT: s.NAT}
}

// inspected is the state s with only the remote ports that get flows
// (datapath.SelectRemote), to name what the flows and traces meet.
func (b *Backend) inspected(s datapath.State) datapath.State {
	s.Remote, _ = datapath.SelectRemote(b.self(), s.Ports, s.Remote)
	return s
}

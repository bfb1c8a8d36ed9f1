package controller

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// traceProto is the trace's protocol as the NAT knows it; the API
// refuses any other than these three before a trace starts.
func traceProto(proto string) uint8 {
	switch proto {
	case v1.ProtoTCP:
		return model.ProtoTCP
	case v1.ProtoUDP:
		return model.ProtoUDP
	}
	return model.ProtoICMP
}

// traceFromOutside explains a packet from outside (q.FromAddress): the
// host's NAT translates it as model.NAT.Translate says, and the backend
// traces the translated packet entering the networks from the host. A
// packet no rule translates is the host's own. What the trace cannot see
// is said in the summary: whether the outside routes the address to the
// host, and the host's other tables.
func (c *Controller) traceFromOutside(ctx context.Context, b datapath.Backend, s datapath.State, addrs []netip.Addr, q v1.Query) (v1.Result, error) {
	t, ok := s.NAT.Translate(q.To, traceProto(q.Proto), q.DPort, model.HostAddress(addrs, s.Networks))
	packet := fmt.Sprintf("%s from %s to %s", q.Proto, q.FromAddress, q.To)
	if q.DPort != 0 {
		packet = fmt.Sprintf("%s from %s to %s", q.Proto, q.FromAddress, netip.AddrPortFrom(q.To, q.DPort))
	}
	if !ok {
		return v1.Result{
			Backend:    b.Info().Backend,
			Packet:     packet,
			Steps:      []v1.Step{{Table: -1, Stage: natStage, Owner: "pipeline", Match: packet, Actions: []string{"no floating IP or port forward of this host's ports takes it"}}},
			Verdict:    v1.ToHost,
			Summary:    fmt.Sprintf("not forwarded by ovs-vnet: %s is the host's (or its other rules')", packet),
			BestEffort: true,
		}, nil
	}
	tq := q
	tq.To = t.To.Addr()
	if q.DPort != 0 {
		tq.DPort = t.To.Port()
	}
	res, err := capabilities(b).Tracer.Trace(ctx, s, tq)
	if err != nil {
		return v1.Result{}, err
	}
	step := v1.Step{Table: -1, Stage: natStage, Owner: t.Kind + " " + t.Name, Match: packet,
		Actions: []string{"dnat to " + dnatTarget(tq)}}
	res.Steps = append([]v1.Step{step}, res.Steps...)
	res.Summary = fmt.Sprintf("DNAT by %s %s to port %s; then %s (not seen: whether the outside routes %s to this host, and the host's other tables)",
		t.Kind, t.Name, t.Port, res.Summary, q.To)
	return res, nil
}

// natStage names the host's NAT table in a trace's steps.
const natStage = "dnat (nftables ip ovs_vnet_nat)"

func dnatTarget(q v1.Query) string {
	if q.DPort == 0 {
		return q.To.String()
	}
	return netip.AddrPortFrom(q.To, q.DPort).String()
}

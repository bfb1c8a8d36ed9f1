package ovs

import (
	"context"
	"log/slog"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// DHCP on the OVS backend (docs/DHCP.md, "DHCP on OVS"): the pipeline sends a
// port's DHCP, through its meter, to the controller with the port's in_port and its
// network's ID (reg0) in the packet-in's match; the daemon answers from the
// port's binding with a packet-out to that port alone. The port is known
// by where the frame came in, never by the MAC it claims.

// dhcpSendTimeout bounds one answer's packet-out: a client retries, and a
// worker stuck on one answer would leave the others to the queue's drops.
const dhcpSendTimeout = 2 * time.Second

// serveDHCP answers the DHCP packet-ins of one session until it ends.
func (b *Backend) serveDHCP(c *ofconn.Conn, q <-chan *openflow.PacketIn) {
	log := b.log.With("component", "dhcp")
	for {
		select {
		case <-c.Done():
			return
		case in := <-q:
			b.answerDHCP(c, in, log)
		}
	}
}

// answerDHCP answers one frame, counting what came of it.
func (b *Backend) answerDHCP(c *ofconn.Conn, in *openflow.PacketIn, log *slog.Logger) {
	inPort, network, ok := packetInPorts(in.Match)
	var port model.Port
	var binding dhcp.Binding
	reason := dhcp.ReasonUnknownPort
	if ok {
		port, binding, reason = b.dhcpBinding(inPort, network)
	}
	if reason != "" {
		b.dhcp.Refuse(reason)
		return
	}
	reply, v := dhcp.Answer(in.Data, binding)
	if b.declines.Warn(port.Name, v, time.Now()) {
		// Anti-spoofing admits only the port's address: nobody else
		// should be able to hold it.
		log.Warn("DHCP decline: the client says its address is in use", "port", port.Name, "address", port.IP)
	}
	if reply != nil {
		ctx, cancel := context.WithTimeout(context.Background(), dhcpSendTimeout)
		defer cancel()
		if _, err := c.Send(ctx, &openflow.PacketOut{BufferID: openflow.NoBuffer, InPort: openflow.PortController,
			Actions: []openflow.Action{openflow.ActionOutput{Port: inPort}}, Data: reply}); err != nil {
			log.Debug("send a DHCP answer", "port", port.Name, "err", err)
			v = dhcp.Verdict{Type: v.Type, Reason: dhcp.ReasonSendFailed}
		}
	}
	b.dhcp.Count(v)
}

// dhcpBinding finds the port on inPort in the state as it is now, which
// must be of network (reg0: the state may have changed since the switch
// sent the frame), and its binding; reason is "" when it has one. A scan:
// the host's bucket lets 500 frames a second this far at most.
func (b *Backend) dhcpBinding(inPort, network uint32) (model.Port, dhcp.Binding, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, ports := range b.state.ports {
		for _, p := range ports {
			if uint32(p.Ofport) != inPort {
				continue
			}
			n, ok := b.state.networks[name]
			if !ok || uint32(n.ID) != network {
				return p, dhcp.Binding{}, dhcp.ReasonUnknownPort
			}
			if !n.DHCP {
				return p, dhcp.Binding{}, dhcp.ReasonDHCPOff
			}
			binding, ok := datapath.DHCPBinding(n, p, model.BridgeMAC(n.Name))
			if !ok {
				return p, dhcp.Binding{}, dhcp.ReasonUnknownPort
			}
			return p, binding, ""
		}
	}
	return model.Port{}, dhcp.Binding{}, dhcp.ReasonUnknownPort
}

// DHCPStats implements datapath.DHCPServer: the daemon's counters, and as
// rate_limited also what the ports' meters dropped — the switch's count,
// which starts again with ovs-vswitchd and loses a port's share when the
// port's meter goes with the port. When the switch does not answer, the
// daemon's counters are still reported, without rate_limited, which would
// count the daemon's share alone (docs/metrics.md, DHCP).
func (b *Backend) DHCPStats(ctx context.Context) (datapath.DHCPStats, error) {
	snap := b.dhcp.Snapshot()
	s := datapath.DHCPStats{Requests: snap.Requests, Answers: snap.Answers, Refused: snap.Refused}
	body, err := statsOf[*openflow.MeterStatsReply](ctx, b, &openflow.MeterStatsRequest{MeterID: openflow.MeterAll})
	if err != nil {
		b.log.Debug("DHCP meter stats: rate_limited left out", "err", err)
		delete(s.Refused, dhcp.ReasonRateLimited)
		return s, nil
	}
	b.mu.Lock()
	p := b.pipeline
	b.mu.Unlock()
	for _, m := range body.Stats {
		if p.IsDHCPMeter(m.MeterID) {
			for _, band := range m.Bands {
				s.Refused[dhcp.ReasonRateLimited] += band.PacketBandCount
			}
		}
	}
	return s, nil
}

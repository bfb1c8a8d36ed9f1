package ovs

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/flows/pmtu"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Path MTU on the OVS backend (docs/PIPELINE.md, Path MTU): the pipeline's
// path_mtu stage sends a copy of each routed packet too big for its
// destination network to the controller, through a meter; the daemon
// answers it here, as the router of the sender's network would, with ICMP
// "fragmentation needed". The Linux backend's routers are the kernel's,
// which does the same by itself.

// pmtuTimeout bounds one OpenFlow exchange of the path MTU side: the
// meter's installation, one ICMP's packet-out.
const pmtuTimeout = 10 * time.Second

// pathMTU counts the ICMP fragmentation needed the daemon sent.
type pathMTU struct{ sent atomic.Uint64 }

// serveSession is the OpenFlow session handler: for our bridge the
// packet-in meter first, so that path_mtu's packet-ins are bounded from
// the first, then the packet-ins answered beside the reconciler, which
// owns the session (flows.Handle) and never sees them (ofconn's own queue).
func (b *Backend) serveSession(c *ofconn.Conn) {
	if c.DatapathID() == b.dpid {
		b.checkPickup(c)
		if err := b.ensurePacketInMeter(c); err != nil {
			// The flows still send too-big packets to the controller,
			// unmetered: answered all the same.
			b.log.Error("path MTU: install the packet-in meter", "err", err)
		}
		go b.answerPacketIns(c)
	}
	b.flows.Handle(c)
}

// ensurePacketInMeter makes the bridge hold the meter as the pipeline
// wants it: read first, since a reconnecting bridge normally has it and a
// daemon restart must send the switch no change (docs/PIPELINE.md,
// Restart); added when missing (a new or restarted ovs-vswitchd), set when
// different.
func (b *Backend) ensurePacketInMeter(c *ofconn.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), pmtuTimeout)
	defer cancel()
	b.mu.Lock() // the pipeline's tunnel changes under Prune (setTunnel)
	want := b.pipeline.PacketInMeterMod(openflow.MeterAdd)
	b.mu.Unlock()
	configs, err := ofconn.Stats[*openflow.MeterConfigReply](ctx, c, &openflow.MeterConfigRequest{MeterID: openflow.MeterAll})
	if err != nil {
		return fmt.Errorf("meter %#x: read the meters: %w", want.MeterID, err)
	}
	for _, have := range configs.Configs {
		if have.MeterID != want.MeterID {
			continue
		}
		if have.Flags == want.Flags && slices.EqualFunc(have.Bands, want.Bands, sameBand) {
			return nil
		}
		want.Command = openflow.MeterModify
	}
	if err := c.SendBatch(ctx, []openflow.Message{want}); err != nil {
		return fmt.Errorf("meter %#x: %w", want.MeterID, err)
	}
	return nil
}

func sameBand(a, b openflow.MeterBand) bool {
	return a.Type == b.Type && a.Rate == b.Rate && a.BurstSize == b.BurstSize && a.PrecLevel == b.PrecLevel
}

// answerPacketIns answers path_mtu's packet-ins until the session ends.
func (b *Backend) answerPacketIns(c *ofconn.Conn) {
	log := b.log.With("component", "pmtu")
	for {
		select {
		case <-c.Done():
			return
		case m := <-c.PacketIns():
			in, ok := m.Body.(*openflow.PacketIn)
			if !ok || in.TableID != pipeline.TablePathMTU || !cookieSpace.Owns(in.Cookie) {
				log.Debug("packet-in not from path_mtu ignored", "type", m.Header.Type)
				continue
			}
			b.answerTooBig(c, in, log)
		}
	}
}

// answerTooBig sends the ICMP for one too-big packet out of the port it
// came from.
func (b *Backend) answerTooBig(c *ofconn.Conn, in *openflow.PacketIn, log *slog.Logger) {
	inPort, dst, ok := packetInPorts(in.Match)
	var gw pmtu.Gateway
	var mtu int
	if ok && len(in.Data) >= 6 {
		// The frame went to the gateway MAC of the sender's network: the
		// gateway table sends nothing else to route.
		gw, mtu, ok = b.pathMTUOf(net.HardwareAddr(in.Data[:6]), dst)
	}
	if !ok {
		log.Debug("too-big packet of no known network pair", "in_port", inPort, "network", dst)
		return
	}
	// Without DF the sender let routers fragment; OVS cannot, and the
	// packet is lost on the destination's link unanswered.
	reply, err := pmtu.FragNeeded(in.Data, gw, mtu)
	if err != nil {
		log.Debug("too-big packet left unanswered", "in_port", inPort, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), pmtuTimeout)
	defer cancel()
	if _, err := c.Send(ctx, &openflow.PacketOut{BufferID: openflow.NoBuffer, InPort: openflow.PortController,
		Actions: []openflow.Action{openflow.ActionOutput{Port: inPort}}, Data: reply}); err != nil {
		log.Warn("send ICMP fragmentation needed", "in_port", inPort, "err", err)
		return
	}
	b.pmtu.sent.Add(1)
}

// packetInPorts reads the in_port and the destination network (reg0) the
// switch reports with a packet-in.
func packetInPorts(m openflow.Match) (inPort, network uint32, ok bool) {
	inPort, haveIn := m.Exact32(openflow.InPort(0))
	network, haveNet := m.Exact32(openflow.Reg(pipeline.RegNetwork, 0))
	return inPort, network, haveIn && haveNet
}

// pathMTUOf finds the sender's network by its gateway MAC and the MTU of
// the destination network by its ID, as the state has them now.
func (b *Backend) pathMTUOf(gwMAC net.HardwareAddr, dst uint32) (pmtu.Gateway, int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var gw pmtu.Gateway
	mtu := 0
	for _, n := range b.state.networks {
		if uint32(n.ID) == dst {
			mtu = n.MTU
		}
		if model.BridgeMAC(n.Name) == gwMAC.String() {
			gw = pmtu.Gateway{IP: n.Gateway, MAC: gwMAC}
		}
	}
	return gw, mtu, gw.IP.IsValid() && mtu != 0
}

// pathMTUStats reads the daemon's count and the packet-in meter's band,
// whose drops are copies of too-big packets the daemon never saw (the
// switch's count: it starts again when ovs-vswitchd does).
func (b *Backend) pathMTUStats(ctx context.Context) (datapath.PathMTUStats, error) {
	s := datapath.PathMTUStats{ICMPSent: b.pmtu.sent.Load()}
	b.mu.Lock()
	id := b.pipeline.PacketInMeter()
	b.mu.Unlock()
	body, err := statsOf[*openflow.MeterStatsReply](ctx, b, &openflow.MeterStatsRequest{MeterID: id})
	if err != nil {
		return s, fmt.Errorf("path MTU meter stats: %w", err)
	}
	for _, m := range body.Stats {
		if m.MeterID == id {
			for _, band := range m.Bands {
				s.RateLimited += band.PacketBandCount
			}
		}
	}
	return s, nil
}

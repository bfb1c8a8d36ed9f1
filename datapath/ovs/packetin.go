package ovs

import (
	"time"

	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
)

// dhcpQueue is how many DHCP packet-ins wait for the session's DHCP
// worker; beyond that they are dropped and counted (queue_full). The
// host's bucket lets 500 a second through at most: the queue holds the
// burst the worker has not caught up with yet.
const dhcpQueue = 64

// serveSession is the OpenFlow session handler: for our bridge the
// packet-ins are answered beside the reconciler, which owns the session
// (flows.Handle) and never sees them (ofconn's own queue). The bridge's
// meters come with its flows (flows/pipeline BaseMeters). The pickup
// window is judged first, before the sync the connection starts.
func (b *Backend) serveSession(c *ofconn.Conn) {
	if c.DatapathID() == b.dpid {
		b.checkPickup(c)
		go b.answerPacketIns(c)
	}
	b.flows.Handle(c)
}

// answerPacketIns dispatches the session's packet-ins by the table that
// sent them until the session ends: path_mtu's are answered here, dhcp's
// by a worker of their own through a bounded queue, so that neither a
// DHCP flood nor a slow DHCP answer delays path MTU. DHCP is bounded for
// all ports together here, before the queue, as the Linux backend bounds
// it (dhcp.Limiter's host bucket): each port's meter keeps one port from
// taking the others' share, and a packet-in carries one meter only.
func (b *Backend) answerPacketIns(c *ofconn.Conn) {
	log := b.log.With("component", "packet-in")
	dhcpq := make(chan *openflow.PacketIn, dhcpQueue)
	go b.serveDHCP(c, dhcpq)
	for {
		select {
		case <-c.Done():
			return
		case m := <-c.PacketIns():
			in, ok := m.Body.(*openflow.PacketIn)
			if !ok || !cookieSpace.Owns(in.Cookie) {
				log.Debug("packet-in not from our flows ignored", "type", m.Header.Type)
				continue
			}
			switch in.TableID {
			case pipeline.TablePathMTU:
				b.answerTooBig(c, in, log)
			case pipeline.TableDHCP:
				if !b.dhcpHost.AllowHost(time.Now()) {
					b.dhcp.Refuse(dhcp.ReasonRateLimited)
					continue
				}
				select {
				case dhcpq <- in:
				default:
					b.dhcp.Refuse(dhcp.ReasonQueueFull)
				}
			default:
				log.Debug("packet-in from an unexpected table ignored", "table", in.TableID)
			}
		}
	}
}

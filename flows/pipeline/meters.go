package pipeline

import (
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Meters bound what the pipeline sends the daemon. Their IDs carry the
// cookie space's top byte, a kind and an object (flowset.CookieSpace.Meter):
// kind 0 the bridge's own, kind 1 a port's, by ofport.
const (
	meterKindBridge uint8 = 0
	meterKindPort   uint8 = 1
)

// meterPathMTU is the object of path_mtu's meter. Object 2 was the
// bridge's DHCP meter, which the daemon's own bound replaced (see
// portDHCP); a bridge that still has it loses it at the next sync, as any
// meter of ours no flow uses.
const meterPathMTU uint16 = 1

// maxMeteredOfport bounds the ofports a port's meter ID can hold. OVS
// numbers ports from 1 and reserves 0xff00 up; a port above it gets no
// DHCP intercept, so its DHCP meets the spoof guard (docs/DHCP.md, "DHCP on OVS").
const maxMeteredOfport = 0xfeff

// PacketInMeter is the ID of the meter on path_mtu's packet-ins.
func (p Pipeline) PacketInMeter() uint32 { return p.Space.Meter(meterKindBridge, meterPathMTU) }

// PortDHCPMeter is the ID of the meter on a port's DHCP packet-ins, so
// that a port flooding DHCP spends its own budget and not the other
// ports'; ok is false for an ofport no meter ID can hold.
func (p Pipeline) PortDHCPMeter(ofport int) (id uint32, ok bool) {
	if ofport < 1 || ofport > maxMeteredOfport {
		return 0, false
	}
	return p.Space.Meter(meterKindPort, uint16(ofport)), true
}

// IsDHCPMeter reports whether id is a port's DHCP meter.
func (p Pipeline) IsDHCPMeter(id uint32) bool {
	return id&^0xffff == p.Space.Meter(meterKindPort, 0)
}

// BaseMeters are the bridge's meters: path_mtu's.
func (p Pipeline) BaseMeters() []flowset.Meter {
	return []flowset.Meter{{ID: p.PacketInMeter(), Rate: PacketInRate, Burst: PacketInBurst}}
}

// PortMeters are a port's meters: its DHCP's, at the Linux backend's
// limiter's rate (package dhcp), so that both backends answer a flood
// alike.
func (p Pipeline) PortMeters(port model.Port) []flowset.Meter {
	id, ok := p.PortDHCPMeter(port.Ofport)
	if !ok {
		return nil
	}
	return []flowset.Meter{{ID: id, Rate: dhcp.PortRate, Burst: dhcp.PortBurst}}
}

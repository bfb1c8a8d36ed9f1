package pipeline

import "github.com/ovs-vnet/ovs-vnet/flows/openflow"

// PacketInLen is how much of a too-big packet path_mtu sends to the
// controller: Ethernet, the longest IPv4 header and the 8 bytes of payload
// that ICMP quotes (RFC 792), rounded up. A 9000-byte frame copied whole
// would cost the switch and the session for nothing.
const PacketInLen = 128

// Rate and burst of the meter on path_mtu's packet-ins, in packets: the
// kernel's own budget for ICMP errors (net.ipv4.icmp_msgs_per_sec and
// icmp_msgs_burst), so that a sender of large packets costs the switch and
// the daemon no more than the Linux backend's router costs its host.
const (
	PacketInRate  = 1000
	PacketInBurst = 50
)

// PacketInMeter is the ID of the meter on path_mtu's packet-ins: ours by
// the top byte of the cookie space, as our groups' IDs are.
func (p Pipeline) PacketInMeter() uint32 {
	return uint32(p.Space.Value>>32)&0xff000000 | 1
}

// PacketInMeterMod installs (or, with cmd MeterModify, restores) that
// meter; the switch counts what its band drops.
func (p Pipeline) PacketInMeterMod(cmd openflow.MeterModCommand) *openflow.MeterMod {
	return &openflow.MeterMod{Command: cmd, MeterID: p.PacketInMeter(),
		Flags: openflow.MeterFlagPktps | openflow.MeterFlagBurst | openflow.MeterFlagStats,
		Bands: []openflow.MeterBand{{Type: openflow.MeterBandDrop, Rate: PacketInRate, BurstSize: PacketInBurst}}}
}

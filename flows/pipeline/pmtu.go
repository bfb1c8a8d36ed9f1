package pipeline

// PacketInLen is how much of a too-big packet path_mtu sends to the
// controller: Ethernet, the longest IPv4 header and the 8 bytes of payload
// that ICMP quotes (RFC 792), rounded up. A 9000-byte frame copied whole
// would cost the switch and the session for nothing.
const PacketInLen = 128

// Rate and burst of the meter on path_mtu's packet-ins (PacketInMeter), in
// packets: the kernel's own budget for ICMP errors
// (net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst), so that a sender of
// large packets costs the switch and the daemon no more than the Linux
// backend's router costs its host.
const (
	PacketInRate  = 1000
	PacketInBurst = 50
)

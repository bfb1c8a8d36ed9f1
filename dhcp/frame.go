package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/ovs-vnet/ovs-vnet/internal/inetsum"
)

// ErrMalformed is why a frame is not a DHCP packet this package can read.
var ErrMalformed = errors.New("malformed")

// Frame layout.
const (
	ethLen      = 14
	ethTypeIPv4 = 0x0800
	ipv4MinLen  = 20
	udpLen      = 8
	protoUDP    = 17
	ttl         = 64
	// fragMask covers the MF flag and the fragment offset: a fragment is
	// never a whole DHCP message.
	fragMask = 0x3fff
)

// Ports of DHCP (RFC 2131 §4.1).
const (
	ServerPort = 67
	ClientPort = 68
)

// Header is what frames carry around a DHCP message: Ethernet, IPv4 and
// UDP addresses.
type Header struct {
	SrcMAC, DstMAC   net.HardwareAddr
	SrcIP, DstIP     netip.Addr
	SrcPort, DstPort uint16
}

// Frame builds an Ethernet frame carrying payload in UDP over IPv4, with
// both checksums, TTL 64 and no IPv4 options.
func Frame(h Header, payload []byte) []byte {
	out := make([]byte, ethLen+ipv4MinLen+udpLen+len(payload))
	copy(out[0:6], h.DstMAC)
	copy(out[6:12], h.SrcMAC)
	binary.BigEndian.PutUint16(out[12:], ethTypeIPv4)

	ip := out[ethLen : ethLen+ipv4MinLen]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(ipv4MinLen+udpLen+len(payload)))
	ip[8], ip[9] = ttl, protoUDP
	src, dst := h.SrcIP.As4(), h.DstIP.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], inetsum.Checksum(0, ip))

	udp := out[ethLen+ipv4MinLen:]
	binary.BigEndian.PutUint16(udp[0:], h.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], h.DstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen+len(payload)))
	copy(udp[udpLen:], payload)
	// The pseudo-header (RFC 768): addresses, protocol, UDP length.
	pseudo := uint32(protoUDP) + uint32(udpLen+len(payload))
	for _, b := range [][4]byte{src, dst} {
		pseudo += uint32(binary.BigEndian.Uint16(b[0:])) + uint32(binary.BigEndian.Uint16(b[2:]))
	}
	sum := inetsum.Checksum(pseudo, udp)
	if sum == 0 {
		sum = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(udp[6:], sum)
	return out
}

// ParseFrame reads an Ethernet frame carrying UDP over IPv4, trusting no
// length in it beyond the bytes there are, and returns the UDP payload. It
// checks no checksum: the userspace datapath, and a veth with offloads on,
// hand over frames whose checksum the sender left for hardware to fill in,
// and a client's DHCP must not be refused for that.
func ParseFrame(frame []byte) (Header, []byte, error) {
	if len(frame) < ethLen+ipv4MinLen+udpLen || binary.BigEndian.Uint16(frame[12:]) != ethTypeIPv4 {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, not Ethernet with IPv4 and UDP", ErrMalformed, len(frame))
	}
	ip := frame[ethLen:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	switch {
	case ip[0]>>4 != 4 || ihl < ipv4MinLen || total < ihl+udpLen || total > len(ip):
		return Header{}, nil, fmt.Errorf("%w: IPv4 version %d, header %d bytes, total length %d, %d bytes present", ErrMalformed, ip[0]>>4, ihl, total, len(ip))
	case ip[9] != protoUDP:
		return Header{}, nil, fmt.Errorf("%w: IP protocol %d, not UDP", ErrMalformed, ip[9])
	case binary.BigEndian.Uint16(ip[6:])&fragMask != 0:
		return Header{}, nil, fmt.Errorf("%w: a fragment", ErrMalformed)
	}
	udp := ip[ihl:total]
	length := int(binary.BigEndian.Uint16(udp[4:]))
	if length < udpLen || length > len(udp) {
		return Header{}, nil, fmt.Errorf("%w: UDP length %d, %d bytes present", ErrMalformed, length, len(udp))
	}
	h := Header{
		DstMAC:  net.HardwareAddr(frame[0:6]),
		SrcMAC:  net.HardwareAddr(frame[6:12]),
		SrcIP:   netip.AddrFrom4([4]byte(ip[12:16])),
		DstIP:   netip.AddrFrom4([4]byte(ip[16:20])),
		SrcPort: binary.BigEndian.Uint16(udp[0:]),
		DstPort: binary.BigEndian.Uint16(udp[2:]),
	}
	return h, udp[udpLen:length], nil
}

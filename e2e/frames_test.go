package e2e

import (
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Frames a hostile workload writes, built by hand: the tests need them
// byte-exact, checksums included, and nothing in the module builds them.

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func ethernet(dst, src net.HardwareAddr, etype uint16, payload []byte) []byte {
	f := append(append(append([]byte{}, dst...), src...), byte(etype>>8), byte(etype))
	return append(f, payload...)
}

// eui64 is the link-local address the kernel gives a link with this MAC.
func eui64(mac net.HardwareAddr) netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]})
}

func checksum(parts ...[]byte) uint16 {
	var sum uint32
	for _, p := range parts {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// pseudoHeader is what TCP and ICMPv6 checksums cover besides themselves.
func pseudoHeader(src, dst netip.Addr, proto byte, length int) []byte {
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		return append(append(s[:], d[:]...), 0, proto, byte(length>>8), byte(length))
	}
	s, d := src.As16(), dst.As16()
	return append(append(s[:], d[:]...), 0, 0, byte(length>>8), byte(length), 0, 0, 0, proto)
}

func ipv4(src, dst netip.Addr, proto byte, payload []byte) []byte {
	h := make([]byte, 20)
	h[0], h[8], h[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return append(h, payload...)
}

func ipv6(src, dst netip.Addr, next, hops byte, payload []byte) []byte {
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, next, hops
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// tcpSYN opens a connection from port 40000 to svcPort.
func tcpSYN(src, dst netip.Addr) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], svcPort)
	binary.BigEndian.PutUint32(seg[4:], 0x766e0001)
	seg[12], seg[13] = 5<<4, 0x02 // header length, SYN
	binary.BigEndian.PutUint16(seg[14:], 64240)
	binary.BigEndian.PutUint16(seg[16:], checksum(pseudoHeader(src, dst, unix.IPPROTO_TCP, len(seg)), seg))
	return seg
}

// routerAdvertisement is an IPv6 packet from router src to all nodes: a
// default router for 30 minutes and the prefix 2001:db8:73::/64 to
// autoconfigure addresses in (RFC 4861 4.2, 4.6.1, 4.6.2).
func routerAdvertisement(src netip.Addr, mac net.HardwareAddr) []byte {
	dst := netip.MustParseAddr("ff02::1")
	ra := []byte{134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}
	ra = append(append(ra, 1, 1), mac...) // source link-layer address
	prefix := netip.MustParseAddr("2001:db8:73::").As16()
	ra = append(ra, 3, 4, 64, 0xc0, 0, 1, 0x51, 0x80, 0, 0, 0x38, 0x40, 0, 0, 0, 0)
	ra = append(ra, prefix[:]...)
	binary.BigEndian.PutUint16(ra[2:], checksum(pseudoHeader(src, dst, unix.IPPROTO_ICMPV6, len(ra)), ra))
	return ipv6(src, dst, unix.IPPROTO_ICMPV6, 255, ra)
}

// arpRequest asks who has tpa, from mac and spa.
func arpRequest(mac net.HardwareAddr, spa, tpa netip.Addr) []byte {
	s, d := spa.As4(), tpa.As4()
	a := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	a = append(append(a, mac...), s[:]...)
	a = append(append(a, 0, 0, 0, 0, 0, 0), d[:]...)
	return a
}

// Package inetsum is the Internet checksum (RFC 1071), which the frames the
// daemon builds itself carry: DHCP answers (dhcp) and ICMP "fragmentation
// needed" (flows/pmtu).
package inetsum

import "encoding/binary"

// Checksum is the Internet checksum of b, starting from sum: 0, or the
// sum of a pseudo-header (UDP, RFC 768). Over bytes that carry their own
// checksum it is 0 when that checksum is right.
func Checksum(sum uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

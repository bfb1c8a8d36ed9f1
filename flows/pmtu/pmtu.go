// Package pmtu builds the ICMP "fragmentation needed" a router owes the
// sender of a packet too big for the next hop (RFC 792, RFC 1191), from the
// start of that packet as the switch handed it to the controller. It is
// pure: the OVS backend does the I/O (datapath/ovs/pmtu.go).
package pmtu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/ovs-vnet/ovs-vnet/internal/inetsum"
)

// Why a too-big packet gets no ICMP. Each is counted, none is an error of
// the daemon's.
var (
	// ErrNotDF: the sender allowed fragmentation, which OVS cannot do; the
	// packet is dropped (docs/PIPELINE.md, Path MTU).
	ErrNotDF = errors.New("DF not set")
	// ErrNoAnswer: RFC 1122 §3.2.2 forbids an ICMP error about this packet
	// (an ICMP error itself, a later fragment, a source that names no one
	// host).
	ErrNoAnswer = errors.New("no ICMP error may answer this packet")
	// ErrMalformed: not an Ethernet frame carrying a well-formed IPv4
	// header.
	ErrMalformed = errors.New("not an IPv4 packet")
)

// Frame layout.
const (
	ethLen      = 14
	ethTypeIPv4 = 0x0800
	ipv4MinLen  = 20
	icmpLen     = 8
	// quoteData is how much of the original payload the ICMP carries
	// after its header: "the first 64 bits" (RFC 792).
	quoteData = 8

	protoICMP       = 1
	icmpDestUnreach = 3
	icmpFragNeeded  = 4
	flagDF          = 0x4000
	fragOffsetMask  = 0x1fff
	ttl             = 64
	minMTU          = 68 // RFC 791: every link carries 68 bytes
	// tosInternetControl is the precedence Linux gives its ICMP errors.
	tosInternetControl = 0xc0
)

// icmpErrorTypes are the ICMP types that report errors (RFC 1122 §3.2.2):
// destination unreachable, source quench, redirect, time exceeded,
// parameter problem.
var icmpErrorTypes = map[uint8]bool{3: true, 4: true, 5: true, 11: true, 12: true}

// Gateway is the router's side on the sender's network: the ICMP comes
// from it, as it would from a router there.
type Gateway struct {
	IP  netip.Addr
	MAC net.HardwareAddr
}

// FragNeeded returns the Ethernet frame of the ICMP "fragmentation needed"
// (type 3 code 4) that announces mtu to the sender of frame, from gw. frame
// is the too-big packet as it arrived from the sender — at least its IPv4
// header and 8 bytes of payload (less if the packet has less); the rest may
// be cut off. The ICMP quotes the header and those 8 bytes.
func FragNeeded(frame []byte, gw Gateway, mtu int) ([]byte, error) {
	if !gw.IP.Is4() || len(gw.MAC) != 6 {
		return nil, fmt.Errorf("gateway %v %v: want an IPv4 address and a MAC", gw.IP, gw.MAC)
	}
	if mtu < minMTU || mtu > 0xffff {
		return nil, fmt.Errorf("next-hop MTU %d out of range", mtu)
	}
	ip, err := parse(frame)
	if err != nil {
		return nil, err
	}
	switch {
	case ip.flags&fragOffsetMask != 0, !ip.src.IsGlobalUnicast(),
		ip.proto == protoICMP && (len(ip.payload) == 0 || icmpErrorTypes[ip.payload[0]]):
		return nil, ErrNoAnswer
	case ip.flags&flagDF == 0:
		return nil, ErrNotDF
	}
	quote := ip.header
	quote = append(quote[:len(quote):len(quote)], ip.payload[:min(quoteData, len(ip.payload))]...)

	out := make([]byte, ethLen+ipv4MinLen+icmpLen+len(quote))
	copy(out[0:6], frame[6:12]) // back to the sender
	copy(out[6:12], gw.MAC)
	binary.BigEndian.PutUint16(out[12:], ethTypeIPv4)

	h := out[ethLen : ethLen+ipv4MinLen]
	h[0] = 0x45
	h[1] = tosInternetControl
	binary.BigEndian.PutUint16(h[2:], uint16(ipv4MinLen+icmpLen+len(quote)))
	h[8], h[9] = ttl, protoICMP
	copy(h[12:16], gw.IP.AsSlice())
	copy(h[16:20], ip.src.AsSlice())
	binary.BigEndian.PutUint16(h[10:], inetsum.Checksum(0, h))

	icmp := out[ethLen+ipv4MinLen:]
	icmp[0], icmp[1] = icmpDestUnreach, icmpFragNeeded
	binary.BigEndian.PutUint16(icmp[6:], uint16(mtu)) // RFC 1191: next-hop MTU in the low 16 bits
	copy(icmp[icmpLen:], quote)
	binary.BigEndian.PutUint16(icmp[2:], inetsum.Checksum(0, icmp))
	return out, nil
}

// ipv4 is what FragNeeded reads of a packet.
type ipv4 struct {
	header  []byte
	payload []byte // what the frame holds of it, at most the packet's own length
	flags   uint16 // flags and fragment offset
	proto   uint8
	src     netip.Addr
}

// parse reads an Ethernet frame with an IPv4 packet, trusting no length in
// it beyond the bytes there are.
func parse(frame []byte) (ipv4, error) {
	if len(frame) < ethLen+ipv4MinLen || binary.BigEndian.Uint16(frame[12:]) != ethTypeIPv4 {
		return ipv4{}, fmt.Errorf("%w: %d bytes, ethertype %#04x", ErrMalformed, len(frame), etherType(frame))
	}
	b := frame[ethLen:]
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if b[0]>>4 != 4 || ihl < ipv4MinLen || ihl > len(b) || total < ihl {
		return ipv4{}, fmt.Errorf("%w: version %d, header %d bytes, total length %d, %d bytes present", ErrMalformed, b[0]>>4, ihl, total, len(b))
	}
	return ipv4{
		header:  b[:ihl],
		payload: b[ihl:min(total, len(b))],
		flags:   binary.BigEndian.Uint16(b[6:]),
		proto:   b[9],
		src:     netip.AddrFrom4([4]byte(b[12:16])),
	}, nil
}

func etherType(frame []byte) uint16 {
	if len(frame) < ethLen {
		return 0
	}
	return binary.BigEndian.Uint16(frame[12:])
}

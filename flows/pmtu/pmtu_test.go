package pmtu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/inetsum"
)

var (
	senderMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	gwMAC     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	gw        = Gateway{IP: netip.MustParseAddr("10.91.0.1"), MAC: gwMAC}
)

// packet is an Ethernet frame from the sender to its gateway with an IPv4
// header of ihl words (options zero-filled), totalLen as the header says,
// and payload bytes 0, 1, 2...; cut keeps only the frame's first bytes.
type packet struct {
	ihl      int
	flags    uint16
	proto    uint8
	icmpType uint8 // the payload's first byte, for proto ICMP
	src      string
	totalLen int
	payload  int
	cut      int
}

func (p packet) frame() []byte {
	if p.ihl == 0 {
		p.ihl = 5
	}
	if p.src == "" {
		p.src = "10.91.0.11"
	}
	if p.proto == 0 {
		p.proto = 6
	}
	b := append(append(append([]byte{}, gwMAC...), senderMAC...), 0x08, 0x00)
	h := make([]byte, p.ihl*4)
	h[0] = 0x40 | byte(p.ihl)
	if p.totalLen == 0 {
		p.totalLen = len(h) + p.payload
	}
	binary.BigEndian.PutUint16(h[2:], uint16(p.totalLen))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	binary.BigEndian.PutUint16(h[6:], p.flags)
	h[8], h[9] = 63, p.proto
	copy(h[12:], netip.MustParseAddr(p.src).AsSlice())
	copy(h[16:], netip.MustParseAddr("10.92.0.11").AsSlice())
	binary.BigEndian.PutUint16(h[10:], inetsum.Checksum(0, h))
	b = append(b, h...)
	for i := range p.payload {
		b = append(b, byte(i))
	}
	if p.proto == protoICMP && p.payload > 0 {
		b[ethLen+len(h)] = p.icmpType
	}
	if p.cut > 0 && p.cut < len(b) {
		b = b[:p.cut]
	}
	return b
}

func TestFragNeeded(t *testing.T) {
	for _, c := range []struct {
		name      string
		in        packet
		mtu       int
		err       error
		quoteData int // payload bytes quoted after the header
	}{
		{"tcp 9000 to 1500", packet{flags: flagDF, payload: 8980}, 1500, nil, 8},
		{"cut by the packet-in", packet{flags: flagDF, payload: 8980, cut: 128}, 1500, nil, 8},
		{"header with options", packet{ihl: 15, flags: flagDF, payload: 4000, cut: 128}, 576, nil, 8},
		{"payload shorter than 8", packet{flags: flagDF, payload: 3}, 576, nil, 3},
		{"frame shorter than its length", packet{flags: flagDF, payload: 100, cut: 14 + 20 + 5}, 576, nil, 5},
		{"icmp echo", packet{flags: flagDF, proto: protoICMP, icmpType: 8, payload: 2000}, 1500, nil, 8},
		{"no DF", packet{payload: 2000}, 1500, ErrNotDF, 0},
		{"icmp error", packet{flags: flagDF, proto: protoICMP, icmpType: 3, payload: 2000, cut: 14 + 20 + 1}, 1500, ErrNoAnswer, 0},
		{"icmp time exceeded", packet{flags: flagDF, proto: protoICMP, icmpType: 11, payload: 2000}, 1500, ErrNoAnswer, 0},
		{"icmp without payload", packet{flags: flagDF, proto: protoICMP}, 1500, ErrNoAnswer, 0},
		{"later fragment", packet{flags: flagDF | 185, payload: 2000}, 1500, ErrNoAnswer, 0},
		{"broadcast source", packet{flags: flagDF, src: "255.255.255.255", payload: 2000}, 1500, ErrNoAnswer, 0},
		{"multicast source", packet{flags: flagDF, src: "224.0.0.5", payload: 2000}, 1500, ErrNoAnswer, 0},
		{"unspecified source", packet{flags: flagDF, src: "0.0.0.0", payload: 2000}, 1500, ErrNoAnswer, 0},
		{"header beyond the frame", packet{ihl: 15, flags: flagDF, payload: 2000, cut: 14 + 40}, 1500, ErrMalformed, 0},
		{"ihl below 5", packet{ihl: 4, flags: flagDF, payload: 2000}, 1500, ErrMalformed, 0},
		{"total below the header", packet{flags: flagDF, totalLen: 19, payload: 2000}, 1500, ErrMalformed, 0},
		{"too short for a header", packet{flags: flagDF, cut: 30}, 1500, ErrMalformed, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.in.frame()
			out, err := FragNeeded(in, gw, c.mtu)
			if !errors.Is(err, c.err) || (c.err != nil) != (err != nil) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if err != nil {
				return
			}
			checkReply(t, in, out, c.mtu, c.quoteData)
		})
	}
}

// checkReply checks every field of the ICMP frame out that answers in.
func checkReply(t *testing.T, in, out []byte, mtu, quoteData int) {
	t.Helper()
	ihl := int(in[14]&0x0f) * 4
	quote := in[14 : 14+ihl+quoteData]
	if want := 14 + 20 + 8 + len(quote); len(out) != want {
		t.Fatalf("reply of %d bytes, want %d", len(out), want)
	}
	if !bytes.Equal(out[0:6], in[6:12]) || !bytes.Equal(out[6:12], gwMAC) || binary.BigEndian.Uint16(out[12:]) != 0x0800 {
		t.Errorf("ethernet %x, want to the sender %x from %s, IPv4", out[:14], in[6:12], gwMAC)
	}
	ip := out[14:34]
	if ip[0] != 0x45 || int(binary.BigEndian.Uint16(ip[2:])) != len(out)-14 || ip[8] != 64 || ip[9] != 1 || inetsum.Checksum(0, ip) != 0 {
		t.Errorf("IPv4 header %x: want version 4, 20 bytes, length %d, TTL 64, ICMP, a valid checksum", ip, len(out)-14)
	}
	if src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])); src != gw.IP || dst != netip.AddrFrom4([4]byte(in[26:30])) {
		t.Errorf("from %s to %s, want from the gateway %s to the sender", src, dst, gw.IP)
	}
	icmp := out[34:]
	if icmp[0] != 3 || icmp[1] != 4 || binary.BigEndian.Uint16(icmp[4:]) != 0 || int(binary.BigEndian.Uint16(icmp[6:])) != mtu || inetsum.Checksum(0, icmp) != 0 {
		t.Errorf("ICMP header %x: want type 3 code 4, next-hop MTU %d, a valid checksum", icmp[:8], mtu)
	}
	if !bytes.Equal(icmp[8:], quote) {
		t.Errorf("quoted %x, want the original header and %d bytes %x", icmp[8:], quoteData, quote)
	}
}

func TestFragNeededArguments(t *testing.T) {
	in := packet{flags: flagDF, payload: 2000}.frame()
	for _, c := range []struct {
		name string
		gw   Gateway
		mtu  int
	}{
		{"MTU below 68", gw, 67},
		{"MTU beyond 16 bits", gw, 1 << 16},
		{"gateway without MAC", Gateway{IP: gw.IP}, 1500},
		{"IPv6 gateway", Gateway{IP: netip.MustParseAddr("fd00::1"), MAC: gwMAC}, 1500},
	} {
		if _, err := FragNeeded(in, c.gw, c.mtu); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// FuzzFragNeeded feeds FragNeeded what a port may send: it must never
// panic, and whatever it answers must be a well-formed reply quoting the
// packet's own bytes.
func FuzzFragNeeded(f *testing.F) {
	for _, p := range []packet{{flags: flagDF, payload: 100}, {ihl: 15, flags: flagDF, payload: 3}, {flags: flagDF, proto: protoICMP, payload: 9}, {}} {
		f.Add(p.frame(), uint16(1500))
	}
	f.Fuzz(func(t *testing.T, frame []byte, mtu uint16) {
		out, err := FragNeeded(frame, gw, int(mtu))
		if err != nil {
			return
		}
		ihl := int(frame[14]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(frame[16:]))
		checkReply(t, frame, out, int(mtu), min(8, total-ihl, len(frame)-14-ihl))
	})
}

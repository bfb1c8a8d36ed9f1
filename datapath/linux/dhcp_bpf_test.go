package linux

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/ovs-vnet/ovs-vnet/dhcp"
)

// TestDHCPFilter runs the sockets' filter on crafted frames: it passes
// UDP 68→67 over IPv4, whatever the IPv4 header's length, and nothing else.
func TestDHCPFilter(t *testing.T) {
	prog, err := dhcpFilter()
	if err != nil {
		t.Fatal(err)
	}
	ins := make([]bpf.Instruction, len(prog))
	for i, r := range prog {
		ins[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	udp := func(src, dst uint16) []byte {
		return dhcp.Frame(dhcp.Header{SrcMAC: mac, DstMAC: mac, SrcIP: netip.IPv4Unspecified(),
			DstIP: netip.AddrFrom4([4]byte{255, 255, 255, 255}), SrcPort: src, DstPort: dst}, make([]byte, 300))
	}
	edit := func(f []byte, change func([]byte)) []byte {
		f = append([]byte(nil), f...)
		change(f)
		return f
	}
	request := udp(dhcp.ClientPort, dhcp.ServerPort)
	// An IPv4 header with 4 bytes of options: the ports move.
	withOptions := append(append(append([]byte(nil), request[:34]...), 1, 1, 1, 0), request[34:]...)
	withOptions[14] = 0x46
	for _, c := range []struct {
		name  string
		frame []byte
		pass  bool
	}{
		{"client to server", request, true},
		{"ip options", withOptions, true},
		{"server to client", udp(dhcp.ServerPort, dhcp.ClientPort), false},
		{"other udp", udp(dhcp.ClientPort, 53), false},
		{"other source port", udp(1068, dhcp.ServerPort), false},
		{"tcp", edit(request, func(f []byte) { f[23] = 6 }), false},
		{"arp", edit(request, func(f []byte) { binary.BigEndian.PutUint16(f[12:], 0x0806) }), false},
		{"ipv6", edit(request, func(f []byte) { binary.BigEndian.PutUint16(f[12:], 0x86dd) }), false},
		{"first fragment", edit(request, func(f []byte) { f[20] |= 0x20 }), false},
		{"later fragment", edit(request, func(f []byte) { f[21] = 1 }), false},
		{"dont fragment set", edit(request, func(f []byte) { f[20] |= 0x40 }), true},
		{"runt", request[:20], false},
	} {
		n, err := vm.Run(c.frame)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := n > 0; got != c.pass {
			t.Errorf("%s: passed %d bytes, want pass %v", c.name, n, c.pass)
		}
		// The kernel keeps min(n, the frame's length) bytes.
		if c.pass && n < len(c.frame) {
			t.Errorf("%s: passed %d of %d bytes, want the whole frame", c.name, n, len(c.frame))
		}
	}
}

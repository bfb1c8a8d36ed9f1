package linux

import (
	"fmt"
	"math"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/dhcp"
)

// Offsets in an Ethernet frame carrying IPv4 (a packet socket reads the
// whole frame; a port's host end carries no VLAN tag).
const (
	offEtherType = 12
	offIPv4      = 14
	offIPv4Frag  = offIPv4 + 6
	offIPv4Proto = offIPv4 + 9
)

// dhcpFilter is the classic BPF program of a port's DHCP socket: IPv4, not
// a fragment, UDP from port 68 to port 67, the whole frame; anything else
// stays in the kernel, so a port's ordinary traffic costs the daemon no
// wake-up and no room in the socket's buffer.
func dhcpFilter() ([]bpf.RawInstruction, error) {
	// Jumps count the instructions they skip; reject is the last one.
	prog := []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: offEtherType, Size: 2},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.ETH_P_IP, SkipTrue: 8},
		/* 2 */ bpf.LoadAbsolute{Off: offIPv4Proto, Size: 1},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_UDP, SkipTrue: 6},
		/* 4 */ bpf.LoadAbsolute{Off: offIPv4Frag, Size: 2},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: 4}, // MF or an offset
		/* 6 */ bpf.LoadMemShift{Off: offIPv4}, // X = the IPv4 header's length
		/* 7 */ bpf.LoadIndirect{Off: offIPv4, Size: 4}, // UDP source and destination ports
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: dhcp.ClientPort<<16 | dhcp.ServerPort, SkipTrue: 1},
		/* 9 */ bpf.RetConstant{Val: math.MaxUint32},
		/* 10 */ bpf.RetConstant{Val: 0},
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble the DHCP socket filter: %w", err)
	}
	return raw, nil
}

// sockFprog is prog as SO_ATTACH_FILTER takes it.
func sockFprog(prog []bpf.RawInstruction) *unix.SockFprog {
	f := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
}

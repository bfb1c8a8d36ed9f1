package e2e

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// dhcpOrder is what dhcpSend sends from a namespace's interface: a
// DISCOVER, or a REQUEST for an address, with an Ethernet source and a
// client hardware address of the test's choosing — a port's own, or one
// it fakes — at a rate for a time, then listens for answers. (mausezahn
// is not packaged here, and python is no dependency of the tests.)
type dhcpOrder struct {
	Ifname    string
	Type      string // "discover" or "request"
	EthSrc    string
	Chaddr    string
	Requested string        // a REQUEST's requested IP (INIT-REBOOT: no server id)
	Ciaddr    string        // a REQUEST's ciaddr and IPv4 source (RENEWING), instead of Requested
	Rate      int           // frames per second; 0 sends one
	For       time.Duration // how long to send at Rate
	Wait      time.Duration // listening after the last frame
}

// dhcpReport is what the sender saw: how many frames it sent and the DHCP
// answers that came back to it with its transaction ID.
type dhcpReport struct {
	Sent    int
	Replies []dhcpReply
}

type dhcpReply struct {
	Type   string // "offer", "ack", "nak"
	Yiaddr string
	Chaddr string
}

// dhcpSend carries out order in namespace ns, on a packet socket opened
// there, as a workload's DHCP client would (openPacketWire does the same
// for other frames).
func dhcpSend(t *testing.T, ns string, order dhcpOrder) dhcpReport {
	t.Helper()
	r, err := dhcpSendFrom(ns, order)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dhcpSendFrom is dhcpSend for another goroutine than the test's.
func dhcpSendFrom(ns string, order dhcpOrder) (dhcpReport, error) {
	var fd, index int
	err := testbed.InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(order.Ifname)
		if err != nil {
			return err
		}
		index = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
		return err
	})
	if err != nil {
		return dhcpReport{}, fmt.Errorf("packet socket on %s in %s: %w", order.Ifname, ns, err)
	}
	defer unix.Close(fd)
	r, err := sendDHCP(fd, index, order)
	if err != nil {
		return r, fmt.Errorf("DHCP sender in %s (%+v): %w", ns, order, err)
	}
	return r, nil
}

// sendDHCP sends o's frames on packet socket fd, bound here to interface
// index, and collects the answers meanwhile.
func sendDHCP(fd, index int, o dhcpOrder) (dhcpReport, error) {
	var r dhcpReport
	frame, xid, err := orderFrame(o)
	if err != nil {
		return r, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: index}); err != nil {
		return r, fmt.Errorf("bind to %s: %w", o.Ifname, err)
	}
	// A flood must not stall on a full receive buffer of our own.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return r, err
	}

	// The replies are read only once stop has returned.
	stop := receive(fd, func(frame []byte) {
		if reply, ok := readReply(frame, xid); ok {
			r.Replies = append(r.Replies, reply)
		}
	})

	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: index, Halen: 6}
	copy(to.Addr[:], broadcastMAC)
	start := time.Now()
	for {
		// Paced by the clock, in bursts of whatever is due: a sleep is
		// rarely shorter than a millisecond.
		due := 1
		if o.Rate > 0 {
			due = int(time.Since(start).Seconds()*float64(o.Rate)) + 1
		}
		for ; r.Sent < due; r.Sent++ {
			if err := unix.Sendto(fd, frame, 0, to); err != nil && err != unix.ENOBUFS {
				stop()
				return r, fmt.Errorf("send: %w", err)
			}
		}
		if o.Rate == 0 || time.Since(start) >= o.For {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(o.Wait)
	stop()
	return r, nil
}

// receive hands each frame packet socket fd receives, except those sent
// from it, to each, on a goroutine of its own, until the function it
// returns is called, which returns once that goroutine has stopped. fd
// must have a receive timeout, for the goroutine to see the call.
func receive(fd int, each func(frame []byte)) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			select {
			case <-quit:
				return
			default:
			}
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // the timeout, to look at quit
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			each(buf[:n])
		}
	}()
	return func() { close(quit); <-done }
}

// orderFrame builds the one frame the order sends, over and over: the
// same transaction, as a client retrying would.
func orderFrame(o dhcpOrder) ([]byte, dhcpv4.TransactionID, error) {
	ethSrc, err := net.ParseMAC(o.EthSrc)
	if err != nil {
		return nil, dhcpv4.TransactionID{}, err
	}
	chaddr, err := net.ParseMAC(o.Chaddr)
	if err != nil {
		return nil, dhcpv4.TransactionID{}, err
	}
	var xid dhcpv4.TransactionID
	binary.BigEndian.PutUint32(xid[:], rand.Uint32())
	mods := []dhcpv4.Modifier{dhcpv4.WithTransactionID(xid), dhcpv4.WithBroadcast(true)}
	var msg *dhcpv4.DHCPv4
	src := netip.IPv4Unspecified()
	switch {
	case o.Type == "discover":
		msg, err = dhcpv4.NewDiscovery(chaddr, mods...)
	case o.Type == "request" && o.Ciaddr != "":
		ci, perr := netip.ParseAddr(o.Ciaddr)
		if perr != nil {
			return nil, xid, perr
		}
		src = ci
		msg, err = dhcpv4.New(append(mods, dhcpv4.WithHwAddr(chaddr), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithClientIP(ci.AsSlice()))...)
	case o.Type == "request":
		req, perr := netip.ParseAddr(o.Requested)
		if perr != nil {
			return nil, xid, perr
		}
		msg, err = dhcpv4.New(append(mods, dhcpv4.WithHwAddr(chaddr), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(req.AsSlice())))...)
	default:
		return nil, xid, fmt.Errorf("message type %q: discover or request", o.Type)
	}
	if err != nil {
		return nil, xid, err
	}
	h := dhcp.Header{SrcMAC: ethSrc, DstMAC: broadcastMAC,
		SrcIP: src, DstIP: netip.AddrFrom4([4]byte{255, 255, 255, 255}),
		SrcPort: dhcp.ClientPort, DstPort: dhcp.ServerPort}
	return dhcp.Frame(h, msg.ToBytes()), xid, nil
}

// readReply reads a frame as a DHCP answer to transaction xid.
func readReply(frame []byte, xid dhcpv4.TransactionID) (dhcpReply, bool) {
	h, payload, err := dhcp.ParseFrame(frame)
	if err != nil || h.SrcPort != dhcp.ServerPort || h.DstPort != dhcp.ClientPort {
		return dhcpReply{}, false
	}
	m, err := dhcpv4.FromBytes(payload)
	if err != nil || m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != xid {
		return dhcpReply{}, false
	}
	return dhcpReply{Type: strings.ToLower(m.MessageType().String()),
		Yiaddr: m.YourIPAddr.String(), Chaddr: m.ClientHWAddr.String()}, true
}

package linux

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
)

// PortStats implements datapath.Backend with one netlink link dump and one
// nftables netlink dump of the spoof counters, whatever the number of ports:
// a scrape of a host with a thousand ports must not fork a thousand
// processes (nor even one, see readSpoofCounters). The two run side by side.
//
// A port is a link whose alias marks it as ours; its network is the one named
// by the alias of the bridge it is enslaved to, so the numbers come from what
// the host holds rather than from what this process remembers (after a
// restart, before the first reconcile, they are already right). A port link
// that is in no bridge of ours (between its creation and its enslavement) is
// not forwarding yet and is left out.
//
// The host end's counters are the switch's view: what it receives (rx) is
// what the workload sent, for a veth's host end and a tap alike.
func (b *Backend) PortStats(ctx context.Context) ([]datapath.PortStats, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("port stats: %w", err)
	}
	// The socket is opened here, on the calling thread, so it lives in the
	// namespace this call acts on, whichever thread then reads from it.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("port stats: netlink socket: %w", err)
	}
	defer h.Close()
	if d, ok := ctx.Deadline(); ok {
		// Best effort: without it a stuck dump would outlive the scrape.
		_ = h.SetSocketTimeout(max(time.Until(d), time.Millisecond))
	}
	var links []netlink.Link
	var listErr error
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		links, listErr = link.List(h)
	}()
	// The counters' socket is opened from this thread for the same reason.
	spoofed, err := readSpoofCounters(ctx)
	<-listed
	if listErr != nil {
		return nil, fmt.Errorf("port stats: list links: %w", listErr)
	}
	if err != nil {
		return nil, fmt.Errorf("port stats: %w", err)
	}
	return portStats(links, spoofed), nil
}

// portStats joins the link dump with the spoof counters; it is apart from
// PortStats so that tests can feed it links without a kernel.
func portStats(links []netlink.Link, spoofed map[string]uint64) []datapath.PortStats {
	bridgePfx := datapath.BridgeAlias("")
	networks := map[int]string{} // bridge ifindex -> network
	for _, l := range links {
		a := l.Attrs()
		if n, ok := strings.CutPrefix(a.Alias, bridgePfx); ok {
			networks[a.Index] = n
		}
	}
	var out []datapath.PortStats
	for _, l := range links {
		a := l.Attrs()
		port, _, ok := datapath.AliasPort(a.Alias)
		if !ok {
			continue
		}
		network, ok := networks[a.MasterIndex]
		if !ok {
			continue
		}
		s := datapath.PortStats{Port: port, Network: network, SpoofedPackets: spoofed[port]}
		if st := a.Statistics; st != nil {
			s.RxPackets, s.TxPackets = st.RxPackets, st.TxPackets
			s.RxBytes, s.TxBytes = st.RxBytes, st.TxBytes
			s.RxDropped, s.TxDropped = st.RxDropped, st.TxDropped
			s.RxErrors, s.TxErrors = st.RxErrors, st.TxErrors
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y datapath.PortStats) int { return strings.Compare(x.Port, y.Port) })
	return out
}

// readSpoofCounters returns the packets of every port's spoof counter, by
// port name, from one nftables netlink dump of the counter objects of table
// `bridge ovs_vnet` (NFT_MSG_GETOBJ; what `nft -j list counters table bridge
// ovs_vnet` asks the kernel, without the process: with a thousand ports nft
// took some 40 ms to fetch and print the whole table). No table means no port
// has rules yet: every count is zero. The socket is opened on the calling
// thread, so it reads the namespace this call acts on.
func readSpoofCounters(ctx context.Context) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read spoof counters: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("read spoof counters: netfilter netlink socket: %w", err)
	}
	defer s.Close()
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := errors.Join(s.SetSendTimeout(&tv), s.SetReceiveTimeout(&tv)); err != nil {
		return nil, fmt.Errorf("read spoof counters: %w", err)
	}
	req := nl.NewNetlinkRequest(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETOBJ, unix.NLM_F_DUMP)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: {Socket: s}}
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.NFPROTO_BRIDGE, Version: nl.NFNETLINK_V0})
	// The kernel filters the dump by table and object type.
	req.AddData(nl.NewRtAttr(unix.NFTA_OBJ_TABLE, nl.ZeroTerminated(hostnet.Table)))
	req.AddData(nl.NewRtAttr(unix.NFTA_OBJ_TYPE, binary.BigEndian.AppendUint32(nil, unix.NFT_OBJECT_COUNTER)))
	out := map[string]uint64{}
	var parseErr error
	err = req.ExecuteIter(unix.NETLINK_NETFILTER, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWOBJ, func(msg []byte) bool {
		if parseErr == nil {
			parseErr = parseSpoofCounterMsg(msg, out)
		}
		return true
	})
	if errors.Is(err, unix.ENOENT) {
		return map[string]uint64{}, nil
	}
	if err = errors.Join(err, parseErr); err != nil {
		return nil, fmt.Errorf("read spoof counters: %w", err)
	}
	return out, nil
}

// parseSpoofCounterMsg adds one NFT_MSG_NEWOBJ message (nfgenmsg, then the
// object's attributes) to out when it is a spoof counter of our table.
func parseSpoofCounterMsg(msg []byte, out map[string]uint64) error {
	if len(msg) < nl.SizeofNfgenmsg {
		return fmt.Errorf("parse nft object: short message (%d bytes)", len(msg))
	}
	// The family and table are checked because the kernel's filter is
	// best effort on old kernels; only our counters may count.
	if msg[0] != unix.NFPROTO_BRIDGE {
		return nil
	}
	attrs, err := nl.ParseRouteAttr(msg[nl.SizeofNfgenmsg:])
	if err != nil {
		return fmt.Errorf("parse nft object: %w", err)
	}
	var table, name string
	var typ uint32
	var data []byte
	for _, a := range attrs {
		switch a.Attr.Type & nlaTypeMask {
		case unix.NFTA_OBJ_TABLE:
			table = unix.ByteSliceToString(a.Value)
		case unix.NFTA_OBJ_NAME:
			name = unix.ByteSliceToString(a.Value)
		case unix.NFTA_OBJ_TYPE:
			if len(a.Value) == 4 {
				typ = binary.BigEndian.Uint32(a.Value)
			}
		case unix.NFTA_OBJ_DATA:
			data = a.Value
		}
	}
	port, ok := strings.CutPrefix(name, spoofCounterPx)
	if table != hostnet.Table || typ != unix.NFT_OBJECT_COUNTER || !ok {
		return nil
	}
	counter, err := nl.ParseRouteAttr(data)
	if err != nil {
		return fmt.Errorf("parse nft counter %s: %w", name, err)
	}
	var packets uint64
	for _, a := range counter {
		if a.Attr.Type&nlaTypeMask == unix.NFTA_COUNTER_PACKETS && len(a.Value) == 8 {
			packets = binary.BigEndian.Uint64(a.Value)
		}
	}
	out[port] = packets
	return nil
}

// nlaTypeMask strips the nested and byte-order flags off an attribute type
// (NLA_TYPE_MASK in linux/netlink.h).
const nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)

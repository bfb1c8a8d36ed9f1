package linux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
)

// PortStats implements datapath.Backend with one netlink link dump and one
// `nft -j list counters`, whatever the number of ports: a scrape of a host
// with a thousand ports must not fork a thousand processes. The two run side
// by side, since nft is a process of its own.
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
		links, listErr = h.LinkList()
	}()
	// nft is started from this thread for the same reason.
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
	portPfx, bridgePfx := datapath.PortAlias(""), datapath.BridgeAlias("")
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
		port, ok := strings.CutPrefix(a.Alias, portPfx)
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
// port name. No table means no port has rules yet: every count is zero.
func readSpoofCounters(ctx context.Context) (map[string]uint64, error) {
	data, err := hostnet.ListNft(ctx, "counters", "table", "bridge", hostnet.Table)
	if errors.Is(err, hostnet.ErrNotExist) {
		return map[string]uint64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read spoof counters: %w", err)
	}
	return parseSpoofCounters(data)
}

func parseSpoofCounters(data []byte) (map[string]uint64, error) {
	var list struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Table   string `json:"table"`
				Family  string `json:"family"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("parse nft counters: %w", err)
	}
	out := map[string]uint64{}
	for _, o := range list.Nftables {
		c := o.Counter
		// The family and table are checked because the command names them
		// and a future nft could list more; only our counters may count.
		if c == nil || c.Family != "bridge" || c.Table != hostnet.Table {
			continue
		}
		if port, ok := strings.CutPrefix(c.Name, spoofCounterPx); ok {
			out[port] = c.Packets
		}
	}
	return out, nil
}

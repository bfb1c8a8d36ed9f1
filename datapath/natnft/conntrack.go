package natnft

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Forget deletes the host's conntrack entries that outlive a change of
// the NAT from was to now, in the network namespace the caller acts on: a
// removed rule takes its connections with it, which would otherwise go
// on translated until they end (docs/DESIGN.md §8.5: deleting removes the
// rules at once). And a UDP forward that now takes a host port takes it
// from the datagrams that came before it: their untranslated entries to
// the host's addresses would hold the flow off the rule for as long as
// the client keeps sending.
func Forget(ctx context.Context, was, now model.NAT) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f := forgetFilter(was, now, nil)
	if f.empty() {
		return nil
	}
	if len(f.udp) > 0 {
		local, err := hostnet.LocalAddrs()
		if err != nil {
			return fmt.Errorf("forget connections: %w", err)
		}
		f.local = local
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
		return fmt.Errorf("delete conntrack entries of changed NAT rules: %w", err)
	}
	return nil
}

// forgetter matches the conntrack entries Forget deletes.
type forgetter struct {
	forwards []model.ForwardRule  // removed or changed
	floating []model.FloatingRule // removed or changed
	udp      []model.ForwardRule  // new UDP forwards
	local    []netip.Addr         // the host's addresses, for udp
}

func forgetFilter(was, now model.NAT, local []netip.Addr) forgetter {
	f := forgetter{local: local}
	for _, r := range was.Forwards {
		if !slices.Contains(now.Forwards, r) {
			f.forwards = append(f.forwards, r)
		}
	}
	for _, r := range was.Floating {
		if !slices.Contains(now.Floating, r) {
			f.floating = append(f.floating, r)
		}
	}
	for _, r := range now.Forwards {
		if r.Proto == model.ProtoUDP && !slices.Contains(was.Forwards, r) {
			f.udp = append(f.udp, r)
		}
	}
	return f
}

func (f forgetter) empty() bool { return len(f.forwards)+len(f.floating)+len(f.udp) == 0 }

// MatchConntrackFlow implements netlink.CustomConntrackFilter. A
// translated entry's reply comes from somewhere else than its original
// went to; that stands for conntrack's DNAT bit, which the library does
// not read.
func (f forgetter) MatchConntrackFlow(c *netlink.ConntrackFlow) bool {
	origDst, _ := netip.AddrFromSlice(c.Forward.DstIP.To4())
	replySrc, _ := netip.AddrFromSlice(c.Reverse.SrcIP.To4())
	replyDst, _ := netip.AddrFromSlice(c.Reverse.DstIP.To4())
	translated := origDst != replySrc || c.Forward.DstPort != c.Reverse.SrcPort
	for _, r := range f.forwards {
		if translated && c.Forward.Protocol == r.Proto && c.Forward.DstPort == r.HostPort &&
			replySrc == r.IP && c.Reverse.SrcPort == r.TargetPort &&
			(!r.HostIP.IsValid() || origDst == r.HostIP) {
			return true
		}
	}
	for _, r := range f.floating {
		// In: to the floating address. Out: the port's own, whose
		// replies come back to it.
		if origDst == r.Address || replyDst == r.Address {
			return true
		}
	}
	for _, r := range f.udp {
		if !translated && c.Forward.Protocol == model.ProtoUDP && c.Forward.DstPort == r.HostPort &&
			(origDst == r.HostIP || !r.HostIP.IsValid() && slices.Contains(f.local, origDst)) {
			return true
		}
	}
	return false
}

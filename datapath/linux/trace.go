package linux

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/nsfile"
)

// Trace implements datapath.Tracer, best-effort: the Linux datapath has no
// way to run a packet without sending it, so the explanation quotes the
// kernel's routes (asked now, in the port's namespace and on the host) and
// reasons from the rules this backend installs.
func (b *Backend) Trace(ctx context.Context, s datapath.State, q v1.Query) (v1.Result, error) {
	if err := ctx.Err(); err != nil {
		return v1.Result{}, err
	}
	var routes traceRoutes
	for _, p := range s.Ports {
		if p.Name != q.From {
			continue
		}
		src := p.IP
		if q.Src.IsValid() {
			src = q.Src
		}
		routes.InNetns = routeIn(ctx, p.NetnsPath(), q.To, netip.Addr{}, "")
		for _, n := range s.Networks {
			if n.Name == p.Network {
				routes.OnHost = routeIn(ctx, "", q.To, src, b.bridgeName(n.Name))
			}
		}
	}
	s.Remote = nil // the explanation knows this host's bridges only
	s.Policy = b.enforced()
	b.mu.Lock()
	s.NAT = b.nat.want
	b.mu.Unlock()
	local, err := hostnet.LocalAddrs()
	if err != nil {
		return v1.Result{}, fmt.Errorf("trace: %w", err)
	}
	routes.Local, routes.NoDHCP = local, b.dhcp.off
	return explainTrace(q, s, b.prefix, routes)
}

// routeIn is the kernel's route to dst, as `ip route get` words it, in the
// namespace at path ("" for the daemon's own) — for a packet from src that
// came in on iif when those are set — or why there is none.
func routeIn(ctx context.Context, path string, dst, src netip.Addr, iif string) string {
	h := &netlink.Handle{}
	if path != "" {
		ns, err := nsfile.Open(ctx, path)
		if err != nil {
			return fmt.Sprintf("namespace %s: %v", path, err)
		}
		defer ns.Close()
		if h, err = netlink.NewHandleAt(ns); err != nil {
			return fmt.Sprintf("namespace %s: %v", path, err)
		}
		defer h.Close()
	}
	opts := &netlink.RouteGetOptions{Iif: iif}
	if src.IsValid() {
		opts.SrcAddr = net.IP(src.AsSlice())
	}
	rs, err := h.RouteGetWithOptions(net.IP(dst.AsSlice()), opts)
	if err != nil {
		return fmt.Sprintf("no route to %s: %v", dst, err)
	}
	if len(rs) == 0 {
		return fmt.Sprintf("no route to %s", dst)
	}
	r := rs[0]
	words := []string{dst.String()}
	if r.Gw != nil {
		words = append(words, "via", r.Gw.String())
	}
	if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
		words = append(words, "dev", l.Attrs().Name)
	}
	if r.Src != nil {
		words = append(words, "src", r.Src.String())
	}
	return strings.Join(words, " ")
}

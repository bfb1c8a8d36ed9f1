package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/nsfile"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// A port's namespace may have routes of its own — an uplink, a default route
// set by its owner — and a port changes none of them unless asked
// (docs/API.md, "Default route"). The default route a port owns is the IPv4
// default route of the main table, metric 0, through the port's own
// interface (the namespace end ovs-vnet made, which takes the route with it
// when the port is deleted) via its network's gateway. Every other route is
// someone else's.

// CheckNetns tells whether p may go into its namespace (nsfile.Open's rules)
// and, when p takes the default route over, returns p with the route it
// will displace, to be recorded before anything changes. A default route
// that is another port's is not taken over (a conflict): that port's own
// displaced route would be lost, since each DELETE puts back only the route
// its port found, and only through an interface that is still there.
func CheckNetns(ctx context.Context, p model.Port) (model.Port, error) {
	if p.Type != v1.PortVeth {
		return p, nil
	}
	if !p.DefaultRoute {
		return p, nsfile.Check(ctx, p.NetnsPath())
	}
	ns, nsh, closeNetns, err := openNetns(ctx, p)
	if err != nil {
		return p, err
	}
	defer closeNetns()
	routes, err := defaultRoutes(nsh)
	if err != nil {
		return p, fmt.Errorf("netns %s: %w", p.Netns, err)
	}
	p.Displaced = model.Route{}
	r, ok := metricZero(routes)
	if !ok {
		return p, nil
	}
	d, err := describe(nsh, r)
	var owner string
	if err == nil {
		owner, err = portOf(ns, nsh, r.LinkIndex)
	}
	if err == nil && owner != "" {
		err = fmt.Errorf("%w: the default route is port %s's, which no other port takes over: delete %s first", datapath.ErrConflict, owner, owner)
	}
	if err != nil {
		return p, fmt.Errorf("netns %s: %w", p.Netns, err)
	}
	p.Displaced = d
	return p, nil
}

// portOf names the port whose namespace end is the link of index in ns, ""
// when it is no port's: the namespace end carries no mark (its owner may
// rename it), its peer — the host end, in the daemon's namespace — carries
// the port's alias. Interface indexes are per namespace, so the host end
// found by index counts only if its peer is in ns and is that link.
func portOf(ns netns.NsHandle, nsh *netlink.Handle, index int) (string, error) {
	end, err := nsh.LinkByIndex(index)
	if err != nil {
		return "", fmt.Errorf("interface of the default route: %w", err)
	}
	if _, ok := end.(*netlink.Veth); !ok {
		return "", nil
	}
	host, err := netlink.LinkByIndex(end.Attrs().ParentIndex)
	if isNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("peer of %s: %w", end.Attrs().Name, err)
	}
	owner, ours := strings.CutPrefix(host.Attrs().Alias, datapath.PortAlias(""))
	if !ours || !paired(host, end) {
		return "", nil
	}
	// The namespace's id as the daemon's namespace knows it: the one a
	// veth end there names its peer's namespace by (-1 when it has none).
	id, err := netlink.GetNetNsIdByFd(int(ns))
	if err != nil {
		return "", fmt.Errorf("id of the netns: %w", err)
	}
	if id < 0 || host.Attrs().NetNsID != id {
		return "", nil
	}
	return owner, nil
}

// setDefaultRoute gives the namespace a default route via the gateway where
// it has none, and keeps the port's own. Where the namespace has another,
// only a port that asked takes it over, and only while it is still the one
// the port recorded as displaced: on a re-attach after someone replaced the
// port's route, that someone's route stays. A port that must set none (a
// container's secondary interface) sets none even in an empty namespace:
// runtimes attach a container's networks in no fixed order (podman 4's CNI
// backend in Go map order), so "first come" would hand the route to
// whichever network came first on that start.
func setDefaultRoute(nsh *netlink.Handle, n model.Network, p model.Port, peer netlink.Link) error {
	if p.NoDefaultRoute {
		return nil
	}
	routes, err := defaultRoutes(nsh)
	if err != nil {
		return err
	}
	ours := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: n.Gateway.AsSlice()}
	for _, r := range routes {
		if r.LinkIndex == ours.LinkIndex && r.Gw.Equal(ours.Gw) {
			return nil
		}
	}
	zero, hasZero := metricZero(routes)
	switch {
	case len(routes) == 0, p.DefaultRoute && !hasZero:
		// Where other default routes have metrics, ours goes before them
		// and replaces none. A port attached into the same namespace at
		// the same moment may have set its own: the first stays.
		err = nsh.RouteAdd(ours)
		if errors.Is(err, unix.EEXIST) {
			err = nil
		}
	case p.DefaultRoute:
		if have, derr := describe(nsh, zero); derr != nil || have != p.Displaced {
			return nil // not the route it displaced: someone else's since
		}
		err = nsh.RouteReplace(ours)
	}
	if err != nil {
		return fmt.Errorf("default route via %s: %w", n.Gateway, err)
	}
	return nil
}

// RestoreDefaultRoute puts back the default route p displaced, once p's
// interface, and with it p's route, is gone — unless the namespace has a
// default route of that metric again. A namespace that is gone, or a route
// whose interface is gone, leaves nothing to put back.
func RestoreDefaultRoute(ctx context.Context, p model.Port) error {
	d := p.Displaced
	if d.Dev == "" {
		return nil
	}
	_, nsh, closeNetns, err := openNetns(ctx, p)
	if errors.Is(err, datapath.ErrNoNetns) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore default route: %w", err)
	}
	defer closeNetns()
	dev, err := nsh.LinkByName(d.Dev)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore default route: look up %s in netns %s: %w", d.Dev, p.Netns, err)
	}
	r := &netlink.Route{LinkIndex: dev.Attrs().Index, Priority: d.Metric, Protocol: netlink.RouteProtocol(d.Protocol)}
	if d.Gateway.IsValid() {
		r.Gw = d.Gateway.AsSlice()
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	if d.Src.IsValid() {
		r.Src = d.Src.AsSlice()
	}
	if d.Onlink {
		r.Flags = int(netlink.FLAG_ONLINK)
	}
	if err := nsh.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("restore default route via %s dev %s in netns %s: %w", d.Gateway, d.Dev, p.Netns, err)
	}
	return nil
}

// defaultRoutes lists the IPv4 default routes of the main table.
func defaultRoutes(nsh *netlink.Handle) ([]netlink.Route, error) {
	all, err := nsh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var routes []netlink.Route
	for _, r := range all {
		if ones, _ := maskOf(r.Dst); ones == 0 {
			routes = append(routes, r)
		}
	}
	return routes, nil
}

func maskOf(dst *net.IPNet) (ones, bits int) {
	if dst == nil {
		return 0, 32
	}
	return dst.Mask.Size()
}

// metricZero is the default route a port's own, of metric 0, would replace.
func metricZero(routes []netlink.Route) (netlink.Route, bool) {
	for _, r := range routes {
		if r.Priority == 0 {
			return r, true
		}
	}
	return netlink.Route{}, false
}

// describe records r as RestoreDefaultRoute can put it back; a route it
// could not is refused rather than lost.
func describe(nsh *netlink.Handle, r netlink.Route) (model.Route, error) {
	if len(r.MultiPath) > 0 || r.Type != unix.RTN_UNICAST {
		return model.Route{}, fmt.Errorf("%w: the default route is multipath or not unicast, and could not be put back", datapath.ErrConflict)
	}
	l, err := nsh.LinkByIndex(r.LinkIndex)
	if err != nil {
		return model.Route{}, fmt.Errorf("interface of the default route: %w", err)
	}
	d := model.Route{Dev: l.Attrs().Name, Metric: r.Priority, Protocol: int(r.Protocol), Onlink: r.Flags&int(netlink.FLAG_ONLINK) != 0}
	d.Gateway = addrOf(r.Gw)
	d.Src = addrOf(r.Src)
	return d, nil
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

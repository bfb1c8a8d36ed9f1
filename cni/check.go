package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

// Check verifies an attachment five ways: the daemon has the port, in this
// network, namespace and interface; the daemon finds that it forwards (its
// status); each port mapping has its port forward; the result the runtime
// cached (prevResult) agrees with it; and the interface in the namespace is
// there, up, with the port's MAC and address, and, for a primary attachment
// (NetConf.Primary), the namespace has a default route: the port's, unless
// another interface held one first (the daemon leaves that one alone:
// docs/API.md, "Default route").
func (p *Plugin) Check(args *skel.CmdArgs) error {
	conf, cl, err := setup(args)
	if err != nil {
		return err
	}
	netnsPath, err := netnsPathOf(args.Netns)
	if err != nil {
		return err
	}
	name := PortName(args.ContainerID, args.IfName)
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeouts.Query)
	defer cancel()
	port, err := cl.Port(ctx, name)
	if client.StatusOf(err) == http.StatusNotFound {
		return types.NewError(types.ErrUnknownContainer,
			fmt.Sprintf("check: the daemon has no port %s for container %s, %s", name, args.ContainerID, args.IfName), "")
	}
	if err != nil {
		return daemonError(fmt.Sprintf("check: get port %s", name), conf.Server, err)
	}
	if err := matchPort(port, conf.Network, netnsPath, args.IfName); err != nil {
		return checkFailed(name, err)
	}
	if err := forwards(port); err != nil {
		return checkFailed(name, err)
	}
	if terr := checkForwards(ctx, cl, conf.Server, port, MappingForwards(args.ContainerID, args.IfName, name, conf.RuntimeConfig.PortMappings)); terr != nil {
		return terr
	}
	if conf.PrevResult != nil {
		if err := matchPrevResult(conf.PrevResult, port, args.IfName); err != nil {
			return checkFailed(name, err)
		}
	}
	if err := checkInterface(netnsPath, args.IfName, port); err != nil {
		return checkFailed(name, err)
	}
	return nil
}

func checkFailed(port string, err error) *types.Error {
	return types.NewError(types.ErrInternal, fmt.Sprintf("check of port %s failed: %v", port, err), "")
}

// matchPort compares the daemon's port with the attachment being checked.
func matchPort(p v1.Port, network, netnsPath, ifname string) error {
	switch {
	case p.Network != network:
		return fmt.Errorf("the port is in network %s, the configuration says %s", p.Network, network)
	case v1.NetnsPath(p.Netns) != netnsPath:
		return fmt.Errorf("the port is in netns %s, CNI_NETNS is %s", v1.NetnsPath(p.Netns), netnsPath)
	case p.Ifname != ifname:
		return fmt.Errorf("the port's interface is %s, CNI_IFNAME is %s", p.Ifname, ifname)
	}
	return nil
}

// forwards tells why the daemon finds port p down, if it does. The daemon
// watches what the namespace cannot show (the host end, the switch), and
// its reason is the one a runtime or an operator can act on: it is the
// same status_reason as GET /v1/ports and ovs_vnet_ports_down show.
func forwards(p v1.Port) error {
	if p.Status != v1.PortDown {
		return nil
	}
	return fmt.Errorf("the port does not forward: %s: %s", p.StatusReason, p.StatusDetail)
}

// matchPrevResult checks that the result the runtime holds still describes
// the port: the spec has CHECK fail when they differ.
func matchPrevResult(prev types.Result, p v1.Port, ifname string) error {
	res, err := current.NewResultFromResult(prev)
	if err != nil {
		return fmt.Errorf("convert prevResult: %w", err)
	}
	idx := -1
	for i, iface := range res.Interfaces {
		if iface.Name == ifname && iface.Sandbox != "" {
			idx = i
		}
	}
	if idx < 0 {
		return fmt.Errorf("prevResult has no interface %s in a sandbox", ifname)
	}
	if mac := res.Interfaces[idx].Mac; !strings.EqualFold(mac, p.MAC) {
		return fmt.Errorf("prevResult gives %s mac %s, the daemon's port has %s", ifname, mac, p.MAC)
	}
	var listed []string
	for _, ipc := range res.IPs {
		if ipc.Interface != nil && *ipc.Interface == idx {
			if ipc.Address.String() == p.IP {
				return nil
			}
			listed = append(listed, ipc.Address.String())
		}
	}
	return fmt.Errorf("prevResult gives %s the addresses [%s], the daemon's port has %s", ifname, strings.Join(listed, " "), p.IP)
}

// checkInterface looks at the interface from inside its namespace.
func checkInterface(netnsPath, ifname string, p v1.Port) error {
	gw := net.ParseIP(p.Gateway)
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifname)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return fmt.Errorf("interface %s does not exist in netns %s", ifname, netnsPath)
		}
		if err != nil {
			return fmt.Errorf("look up interface %s: %w", ifname, err)
		}
		a := l.Attrs()
		if !strings.EqualFold(a.HardwareAddr.String(), p.MAC) {
			return fmt.Errorf("interface %s has mac %s, the port has %s", ifname, a.HardwareAddr, p.MAC)
		}
		if a.Flags&net.FlagUp == 0 {
			return fmt.Errorf("interface %s is down", ifname)
		}
		// A veth whose host end is down reports lower-layer-down: up but deaf.
		if a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown {
			return fmt.Errorf("interface %s has no carrier (operstate %s): is host end %s up?", ifname, a.OperState, p.HostIfname)
		}
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_V4) })
		if err != nil {
			return fmt.Errorf("list the addresses of %s: %w", ifname, err)
		}
		if !hasAddr(addrs, p.IP) {
			return fmt.Errorf("interface %s lacks address %s (has %v)", ifname, p.IP, addrs)
		}
		if p.DefaultRoute != nil && !*p.DefaultRoute {
			return nil // a secondary: the primary's route, or none, is not its business
		}
		ours, held, err := defaultRoute(l, gw)
		if err != nil {
			return err
		}
		if !ours && !held {
			return fmt.Errorf("no default route via %s on %s, and none in the namespace", p.Gateway, ifname)
		}
		return nil
	})
	var missing ns.NSPathNotExistErr
	if errors.As(err, &missing) {
		return fmt.Errorf("netns %s does not exist", netnsPath)
	}
	return err
}

// retryDump repeats a netlink dump the kernel interrupted (the table changed
// under it), which netlink reports as ErrDumpInterrupted with partial data.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range 5 {
		var out []T
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

func hasAddr(addrs []netlink.Addr, prefix string) bool {
	for _, a := range addrs {
		if a.IPNet != nil && a.IPNet.String() == prefix {
			return true
		}
	}
	return false
}

// defaultRoute tells whether l, in the namespace the caller is in, holds an
// IPv4 default route via gw (ours), and whether the namespace has any IPv4
// default route (held), in its main table.
func defaultRoute(l netlink.Link, gw net.IP) (ours, held bool, err error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return false, false, fmt.Errorf("list the routes of the netns: %w", err)
	}
	ours, held = defaultRouteOf(routes, l.Attrs().Index, gw)
	return ours, held, nil
}

// defaultRouteOf is defaultRoute on a list of routes. netlink reports a
// default route with a nil Dst or, in newer releases, 0.0.0.0/0.
func defaultRouteOf(routes []netlink.Route, index int, gw net.IP) (ours, held bool) {
	for _, r := range routes {
		isDefault := r.Dst == nil
		if r.Dst != nil {
			ones, _ := r.Dst.Mask.Size()
			isDefault = ones == 0 && r.Dst.IP.IsUnspecified()
		}
		if isDefault {
			held = true
			ours = ours || r.LinkIndex == index && r.Gw.Equal(gw)
		}
	}
	return ours, held
}

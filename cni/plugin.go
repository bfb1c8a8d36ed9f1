package cni

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

// Timeouts bound each call to the daemon, so that a hung daemon costs the
// runtime a clear error rather than a stuck container.
type Timeouts struct {
	Attach time.Duration // PUT of a port: seconds on a big, busy host
	Detach time.Duration // DELETE of one port
	Query  time.Duration // GETs: readiness, a port, a list
}

// DefaultTimeouts are generous: an attach waits until the port forwards, and
// the daemon serialises work on a port's neighbours.
func DefaultTimeouts() Timeouts {
	return Timeouts{Attach: 60 * time.Second, Detach: 60 * time.Second, Query: 30 * time.Second}
}

// Plugin carries out the CNI commands. Its methods have skel's signatures.
type Plugin struct {
	Stdout   io.Writer // where ADD prints its result
	Timeouts Timeouts
}

// New returns a plugin printing its results to stdout.
func New(stdout io.Writer) *Plugin {
	return &Plugin{Stdout: stdout, Timeouts: DefaultTimeouts()}
}

// Funcs is the plugin's table for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, Status: p.Status, GC: p.GC}
}

// setup parses the configuration and connects to its daemon: the first step
// of every command.
func setup(args *skel.CmdArgs) (*NetConf, *client.Client, error) {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, nil, err
	}
	cl, err := conf.Client()
	if err != nil {
		return nil, nil, err
	}
	return conf, cl, nil
}

// Add attaches the container's interface as port PortName(container, ifname),
// forwards the port mappings to it (ForwardName) and prints the result. The
// daemon answers a repeated ADD of the same spec with the port and forwards
// as they are, so a runtime's retry is harmless; one whose security_groups
// changed changes the port's groups in place. A forward the daemon refuses
// (a host port another container has) fails the ADD and undoes it.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, cl, err := setup(args)
	if err != nil {
		return err
	}
	netnsPath, err := netnsPathOf(args.Netns)
	if err != nil {
		return err
	}
	// The daemon would refuse a missing namespace too, but only as a 400 we
	// could not tell from a bad configuration.
	if err := ns.IsNSorErr(netnsPath); err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %s: %v", netnsPath, err), "")
	}
	req, err := conf.RequestFrom(args.Args)
	if err != nil {
		return err
	}
	name := PortName(args.ContainerID, args.IfName)
	spec := v1.PortSpec{Network: conf.Network, Netns: netnsPath, Ifname: args.IfName,
		IP: req.IP, MAC: req.MAC, Type: v1.PortVeth, ReleaseWithNetns: true, SecurityGroups: conf.SecurityGroups}
	if !conf.Primary(args.IfName) {
		spec.DefaultRoute = new(bool) // false: a secondary sets none, even first
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeouts.Attach)
	defer cancel()
	port, portCreated, err := cl.PutPort(ctx, name, spec)
	if err != nil {
		return daemonError(fmt.Sprintf("attach port %s (container %s, %s) to network %s", name, args.ContainerID, args.IfName, conf.Network), conf.Server, err)
	}
	fwds := MappingForwards(args.ContainerID, args.IfName, name, conf.RuntimeConfig.PortMappings)
	if created, terr := putForwards(ctx, cl, conf.Server, fwds); terr != nil {
		return p.undoAdd(cl, name, portCreated, created, terr)
	}
	// Looked at, not assumed: the daemon leaves a default route the
	// namespace has already alone, and a secondary sets none.
	defaultRoute, err := holdsDefaultRoute(netnsPath, args.IfName, port.Gateway)
	if err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("port %s attached, but its default route could not be looked at: %v", name, err), "")
	}
	res, err := BuildResult(port, netnsPath, args.IfName, defaultRoute)
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	out, err := res.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("convert the result to %s: %v", conf.CNIVersion, err), "")
	}
	if err := out.PrintTo(p.Stdout); err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("print the result: %v", err), "")
	}
	return nil
}

// Del deletes the port mappings' forwards and detaches the port. A port the
// daemon does not know is already gone, and the daemon itself tolerates a
// namespace or link that went away, so DEL needs neither CNI_NETNS nor the
// namespace to still exist. Deleting the port would take its forwards with
// it (docs/API.md); deleting them by name first leaves none behind even
// when the port is gone already.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, cl, err := setup(args)
	if err != nil {
		return err
	}
	name := PortName(args.ContainerID, args.IfName)
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeouts.Detach)
	defer cancel()
	fwds := MappingForwards(args.ContainerID, args.IfName, name, conf.RuntimeConfig.PortMappings)
	names := make([]string, len(fwds))
	for i, f := range fwds {
		names[i] = f.Name
	}
	if err := deleteForwards(ctx, cl, names); err != nil {
		return daemonError(fmt.Sprintf("detach port %s (container %s, %s)", name, args.ContainerID, args.IfName), conf.Server, err)
	}
	if err := cl.DeletePort(ctx, name); err != nil && client.StatusOf(err) != http.StatusNotFound {
		return daemonError(fmt.Sprintf("detach port %s (container %s, %s)", name, args.ContainerID, args.IfName), conf.Server, err)
	}
	return nil
}

// Status reports whether an ADD could succeed now: the daemon is ready and
// the configured network exists.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, cl, err := setup(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeouts.Query)
	defer cancel()
	if err := cl.Ready(ctx); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("ovs-vnet daemon at %s is not ready: %v", conf.Server, err), "")
	}
	if _, err := cl.Network(ctx, conf.Network); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("network %s at %s: %v", conf.Network, conf.Server, err), "")
	}
	return nil
}

// GC deletes the ports of the network that have the plugin's name form but
// belong to no attachment the runtime still considers valid (StalePorts).
// Every stale port is tried even when one fails.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, cl, err := setup(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeouts.Query)
	info, err := cl.Info(ctx)
	var ports []v1.Port
	if err == nil {
		ports, err = cl.Ports(ctx, conf.Network)
	}
	cancel()
	if client.StatusOf(err) == http.StatusNotFound {
		return nil // no network, no ports of it
	}
	if err != nil {
		return daemonError(fmt.Sprintf("list the ports of network %s", conf.Network), conf.Server, err)
	}
	var failed []string
	var first error
	for _, name := range StalePorts(ports, conf.Network, info.Host, conf.ValidAttachments) {
		ctx, cancel := context.WithTimeout(context.Background(), p.Timeouts.Detach)
		err := cl.DeletePort(ctx, name)
		cancel()
		if err != nil && client.StatusOf(err) != http.StatusNotFound {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
			if first == nil {
				first = err
			}
		}
	}
	if first != nil {
		e := daemonError(fmt.Sprintf("gc of network %s", conf.Network), conf.Server, first)
		e.Msg = fmt.Sprintf("gc of network %s: could not delete %d stale port(s): %s", conf.Network, len(failed), strings.Join(failed, "; "))
		return e
	}
	return nil
}

// netnsPathOf checks CNI_NETNS: the daemon takes an absolute, clean path.
func netnsPathOf(netns string) (string, error) {
	if netns == "" || !filepath.IsAbs(netns) {
		return "", types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q is not an absolute path", netns), "")
	}
	return filepath.Clean(netns), nil
}

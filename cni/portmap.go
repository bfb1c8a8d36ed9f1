package cni

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

// PortMapping is one entry of the portMappings capability, as podman's -p
// and CRI's hostPort hand it to the plugins that declare it (the CNI
// conventions document).
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP"`
}

// Forward is the port forward (docs/API.md) a port mapping becomes.
type Forward struct {
	Name string
	Spec v1.PortForwardSpec
}

// MappingForwards turns the runtime's port mappings of an attachment into the
// forwards of its port, in the order given. A host IP of "" or 0.0.0.0 is
// every address of the host; an IPv6 one is skipped, since ovs-vnet
// networks are IPv4 (a runtime asks for [::] beside 0.0.0.0 for one -p).
// Values are the daemon's to judge: a bad one fails ADD with its message.
func MappingForwards(containerID, ifname, port string, mappings []PortMapping) []Forward {
	var out []Forward
	for _, m := range mappings {
		hostIP := m.HostIP
		if a, err := netip.ParseAddr(hostIP); err == nil {
			if a.Is6() && !a.Is4In6() {
				continue
			}
			if a.Unmap().IsUnspecified() {
				hostIP = ""
			}
		}
		proto := strings.ToLower(m.Protocol) // CRI says TCP, podman tcp
		if proto == "" {
			proto = v1.DefaultForwardProtocol
		}
		out = append(out, Forward{
			Name: ForwardName(containerID, ifname, proto, hostIP, m.HostPort),
			Spec: v1.PortForwardSpec{Protocol: proto, HostPort: m.HostPort, Port: port, TargetPort: m.ContainerPort, HostIP: hostIP},
		})
	}
	return out
}

// putForwards puts the forwards of an ADD, in order. On the first failure
// it returns the error with the names of the forwards it created, which the
// caller deletes with the rest of the ADD's work.
func putForwards(ctx context.Context, cl *client.Client, server string, fwds []Forward) (created []string, _ *types.Error) {
	for _, f := range fwds {
		_, isNew, err := cl.PutPortForward(ctx, f.Name, f.Spec)
		if err != nil {
			return created, daemonError(fmt.Sprintf("forward host port %s/%s to port %s:%d",
				f.Spec.Protocol, hostPortText(f.Spec), f.Spec.Port, f.Spec.TargetPort), server, err)
		}
		if isNew {
			created = append(created, f.Name)
		}
	}
	return created, nil
}

// deleteForwards deletes forwards by name, those already gone included, and
// returns the first failure other than a 404.
func deleteForwards(ctx context.Context, cl *client.Client, names []string) error {
	for _, name := range names {
		if err := cl.DeletePortForward(ctx, name); err != nil && client.StatusOf(err) != http.StatusNotFound {
			return fmt.Errorf("delete port forward %s: %w", name, err)
		}
	}
	return nil
}

// checkForwards is CHECK of the port mappings: each one's forward exists,
// names the port and has the spec the mapping asks for.
func checkForwards(ctx context.Context, cl *client.Client, server string, port v1.Port, fwds []Forward) *types.Error {
	for _, f := range fwds {
		got, err := cl.PortForward(ctx, f.Name, false)
		if client.StatusOf(err) == http.StatusNotFound {
			return checkFailed(port.Name, fmt.Errorf("port mapping %s/%s has no port forward %s", f.Spec.Protocol, hostPortText(f.Spec), f.Name))
		}
		if err != nil {
			return daemonError(fmt.Sprintf("check: get port forward %s", f.Name), server, err)
		}
		have := v1.PortForwardSpec{Protocol: got.Protocol, HostPort: got.HostPort, Port: got.Port, TargetPort: got.TargetPort}
		if got.HostIP.IsValid() {
			have.HostIP = got.HostIP.String()
		}
		want := f.Spec
		if want.TargetPort == 0 {
			want.TargetPort = want.HostPort // the daemon's default
		}
		if have != want {
			return checkFailed(port.Name, fmt.Errorf("port forward %s is %+v, the port mapping asks for %+v", f.Name, have, want))
		}
	}
	return nil
}

// hostPortText is a mapping's host side as messages show it: 8080, or
// 192.0.2.9:8080 on one address.
func hostPortText(s v1.PortForwardSpec) string {
	if s.HostIP == "" {
		return fmt.Sprint(s.HostPort)
	}
	return fmt.Sprintf("%s:%d", s.HostIP, s.HostPort)
}

// undoAdd deletes what a failed ADD made — the forwards it created and the
// port when it created it — so that ADD is all or nothing. It runs on its
// own deadline: the ADD's may be what failed. A failure to clean up is
// added to the ADD's error; the runtime's DEL will try again.
func (p *Plugin) undoAdd(cl *client.Client, port string, portCreated bool, fwds []string, cause *types.Error) *types.Error {
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeouts.Detach)
	defer cancel()
	err := deleteForwards(ctx, cl, fwds)
	if err == nil && portCreated {
		if err = cl.DeletePort(ctx, port); client.StatusOf(err) == http.StatusNotFound {
			err = nil
		}
	}
	if err != nil {
		cause.Details = strings.TrimPrefix(cause.Details+"; ", "; ") + "undoing the ADD failed too: " + err.Error()
	}
	return cause
}

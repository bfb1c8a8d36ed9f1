// Package cni is the CNI plugin ovs-vnet-cni (docs/CNI.md): it turns the
// runtime's ADD, DEL, CHECK, STATUS and GC into calls to the daemon's REST
// API, so that a container's interface is an ordinary ovs-vnet port. The
// plugin keeps no state of its own: the port's name is derived from the
// container id and interface name, and the daemon holds everything else.
package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/client"
)

// Versions are the CNI spec versions the plugin speaks; skel refuses the
// others, and ADD answers in the version the configuration names
// (GetAsVersion). 0.4.0 and 1.0.0 are what containerd 1.6, CRI-O, podman
// 4 and the plugins Debian 12 ships still send; skel itself keeps CHECK to
// 0.4.0 and later, and STATUS and GC to 1.1.0, as the spec has them.
func Versions() version.PluginInfo {
	return version.PluginSupports("0.4.0", "1.0.0", "1.1.0")
}

// NetConf is the network configuration the runtime hands the plugin on stdin.
// Keys it does not know are ignored: runtimes add their own.
type NetConf struct {
	types.PluginConf // cniVersion, name, prevResult, cni.dev/valid-attachments

	Network   string `json:"network"`    // the ovs-vnet network (required)
	Server    string `json:"server"`     // daemon URL or unix socket path
	TokenFile string `json:"token_file"` // file holding the API's bearer token
	CAFile    string `json:"ca_file"`    // PEM bundle to verify an https server with
	// DefaultRoute says whether the network's interface is a container's
	// primary one, which may hold its default route; absent, the one on
	// eth0 is (Primary).
	DefaultRoute *bool `json:"default_route"`
	// SecurityGroups are the security groups whose rules filter the
	// container's port (docs/API.md); absent, none. Editing them in the
	// configuration takes effect at the container's next ADD, which the
	// daemon applies in place (the port keeps its address and connections).
	SecurityGroups []string `json:"security_groups"`

	// RuntimeConfig carries the "ips", "mac" and "portMappings"
	// capabilities.
	RuntimeConfig struct {
		IPs          []string      `json:"ips"`
		MAC          string        `json:"mac"`
		PortMappings []PortMapping `json:"portMappings"`
	} `json:"runtimeConfig"`
	// Args is the conventional args.cni block of a network configuration.
	Args struct {
		CNI struct {
			IPs []string `json:"ips"`
			MAC string   `json:"mac"`
		} `json:"cni"`
	} `json:"args"`

	// LegacyAttachments is the key libcni also sends for GC: the 1.1.0 spec
	// first misnamed it, and a runtime may send only that one.
	LegacyAttachments []types.GCAttachment `json:"cni.dev/attachments"`
}

// ParseConfig decodes and checks a network configuration, filling in the
// default server and decoding prevResult.
func ParseConfig(data []byte) (*NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode network configuration: %v", err), "")
	}
	if c.Network == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			`network configuration lacks "network": name the ovs-vnet network to attach to, e.g. "network": "blue"`, "")
	}
	if err := v1.ValidateName(c.Network); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(`"network": %v`, err), "")
	}
	for i, g := range c.SecurityGroups {
		if err := v1.ValidateName(g); err != nil {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(`"security_groups"[%d]: %v`, i, err), "")
		}
	}
	if c.Server == "" {
		c.Server = client.DefaultServer
	}
	if c.ValidAttachments == nil {
		c.ValidAttachments = c.LegacyAttachments
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	return &c, nil
}

// Client connects to the daemon the configuration names, with its token.
func (c *NetConf) Client() (*client.Client, error) {
	opts := client.Options{CAFile: c.CAFile}
	if c.TokenFile != "" {
		raw, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("read token_file: %v", err), "")
		}
		opts.Token = strings.TrimSpace(string(raw))
		if opts.Token == "" {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("token_file %s is empty", c.TokenFile), "")
		}
	}
	cl, err := client.New(c.Server, opts)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("client of %s: %v", c.Server, err), "")
	}
	return cl, nil
}

// PrimaryIfname is the interface runtimes give a container's first network:
// podman keeps eth0 for the network a container was created with and names
// the ones connected later eth1, eth2…; CRI runtimes attach a pod as eth0;
// Multus names the extra networks net1….
const PrimaryIfname = "eth0"

// Primary tells whether the attachment on ifname is the container's
// primary one, the only one that sets its default route: a container's
// networks are attached in no order one could rely on (podman 4's CNI
// backend attaches them in Go map order on every start), so the namespace
// having no default route yet does not tell the first network from the
// others. The configuration's default_route decides where it has one.
func (c *NetConf) Primary(ifname string) bool {
	if c.DefaultRoute != nil {
		return *c.DefaultRoute
	}
	return ifname == PrimaryIfname
}

// Request is what ADD asks the daemon for besides the network: a static
// address and MAC, when the runtime passed them.
type Request struct {
	IP  string // bare address, "" for the next free one
	MAC string
}

// RequestFrom collects the static address and MAC from, in order of
// precedence, the runtimeConfig capabilities, args.cni and CNI_ARGS
// (IP=...;MAC=...), the order the reference plugins use.
func (c *NetConf) RequestFrom(cniArgs string) (Request, error) {
	var r Request
	ips := c.RuntimeConfig.IPs
	if len(ips) == 0 {
		ips = c.Args.CNI.IPs
	}
	r.MAC = c.RuntimeConfig.MAC
	if r.MAC == "" {
		r.MAC = c.Args.CNI.MAC
	}
	kv := parseCNIArgs(cniArgs)
	if len(ips) == 0 && kv["IP"] != "" {
		ips = strings.Split(kv["IP"], ",")
	}
	if r.MAC == "" {
		r.MAC = kv["MAC"]
	}
	if len(ips) > 1 {
		return Request{}, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("%d addresses requested (%s): an ovs-vnet port has one IPv4 address", len(ips), strings.Join(ips, ", ")), "")
	}
	if len(ips) == 1 {
		ip, err := bareIPv4(ips[0])
		if err != nil {
			return Request{}, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
		}
		r.IP = ip
	}
	return r, nil
}

// bareIPv4 accepts "10.10.0.5" or "10.10.0.5/24" and returns the address
// alone: the network's subnet decides the prefix, not the request.
func bareIPv4(s string) (string, error) {
	s = strings.TrimSpace(s)
	addr, err := netip.ParseAddr(s)
	if err != nil {
		p, perr := netip.ParsePrefix(s)
		if perr != nil {
			return "", fmt.Errorf("requested ip %q is not an address such as 10.10.0.5 or 10.10.0.5/24", s)
		}
		addr = p.Addr()
	}
	if !addr.Is4() {
		return "", fmt.Errorf("requested ip %s is not IPv4: ovs-vnet networks are IPv4", s)
	}
	return addr.String(), nil
}

// parseCNIArgs splits CNI_ARGS ("K=V;K2=V2"); malformed pairs are skipped,
// since runtimes put keys of their own there that are none of our business.
func parseCNIArgs(s string) map[string]string {
	out := map[string]string{}
	for pair := range strings.SplitSeq(s, ";") {
		if k, v, ok := strings.Cut(pair, "="); ok && k != "" {
			out[k] = v
		}
	}
	return out
}

package cni

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// portPrefix starts the name of every port the plugin makes. GC deletes only
// names of exactly this form, so ports made through the API by hand (any
// other name) are never touched.
const portPrefix = "cni-"

// portHashLen is how many hex digits of the hash follow the prefix: 64 bits,
// so two attachments on one host never meet, and 20 characters in all, well
// within the daemon's 32.
const portHashLen = 16

// forwardPrefix starts the name of every port forward the plugin makes for
// a port mapping (docs/CNI.md, "Port mappings").
const forwardPrefix = "cnf-"

// PortName is the port of one attachment, a container's interface. The NUL
// separator keeps ("ab", "c") and ("a", "bc") apart.
func PortName(containerID, ifname string) string {
	return portPrefix + hashOf(containerID, ifname)
}

// ForwardName is the port forward of one port mapping of an attachment: a
// repeated ADD puts the same forward again, and DEL finds it without state.
// hostIP is "" for every address of the host.
func ForwardName(containerID, ifname, proto, hostIP string, hostPort int) string {
	return forwardPrefix + hashOf(containerID, ifname, proto, hostIP, strconv.Itoa(hostPort))
}

// hashOf is the first portHashLen hex digits of the sha256 of parts joined
// by NUL, which no part holds: ("ab", "c") and ("a", "bc") differ.
func hashOf(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])[:portHashLen]
}

// IsPluginPort says whether name has the exact form PortName gives.
func IsPluginPort(name string) bool {
	digits, ok := strings.CutPrefix(name, portPrefix)
	if !ok || len(digits) != portHashLen {
		return false
	}
	for _, c := range digits {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// StalePorts picks, among the ports of network, those GC deletes: the
// plugin's own (by name) on this host that no valid attachment derives. The
// runtime knows only its own host's attachments, so in a cluster the other
// hosts' ports are never stale here. It returns names in the order of ports.
func StalePorts(ports []v1.Port, network, host string, valid []types.GCAttachment) []string {
	keep := make(map[string]bool, len(valid))
	for _, a := range valid {
		keep[PortName(a.ContainerID, a.IfName)] = true
	}
	var stale []string
	for _, p := range ports {
		if p.Network == network && p.Host == host && IsPluginPort(p.Name) && !keep[p.Name] {
			stale = append(stale, p.Name)
		}
	}
	return stale
}

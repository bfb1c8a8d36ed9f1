package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
)

// HostIfname names the host end of a port's veth pair (and a tap port's device
// when the request names none). It is derived from the port name alone so that a
// restarted daemon finds the links of its ports without having to remember them;
// a hash keeps it within IFNAMSIZ whatever the port name's length.
func HostIfname(port string) string {
	return "vnet" + shortHash("port/"+port, 10)
}

// BridgeName names the Linux bridge of a network: the configured prefix, then a
// hash of the network name, cut to the kernel's 15 characters.
func BridgeName(prefix, network string) string {
	name := prefix + "-" + shortHash("network/"+network, 8)
	return name[:min(len(name), maxIfname)]
}

// PortMAC is the MAC a port gets when the request gives none: locally
// administered, unicast, and stable per port name so a re-created port keeps
// the address its peers have cached.
func PortMAC(port string) string {
	return stableMAC("port/" + port)
}

// BridgeMAC is the MAC of a network's gateway: its Linux bridge's on the Linux
// backend, the router MAC in the flows on OVS. Without a fixed one the kernel
// takes the lowest MAC of a bridge's ports, and the gateway's MAC would change
// under the neighbours' ARP caches as ports come and go.
func BridgeMAC(network string) string {
	return stableMAC("bridge/" + network)
}

// BridgeMACOn is the MAC of a network's gateway on a cluster's Linux host
// whose underlay address is host: each host's own (datapath/linux/overlay.go
// says why), stable while the address stays.
func BridgeMACOn(network string, host netip.Addr) string {
	return stableMAC("bridge/" + network + "@" + host.String())
}

// HostMAC is the MAC of an OVS integration bridge's own interface, through
// which masquerading networks reach the host. OVS would otherwise take it
// from the bridge's ports, and it would change as ports come and go.
func HostMAC(bridge string) string {
	return stableMAC("host/" + bridge)
}

func stableMAC(seed string) string {
	h := sha256.Sum256([]byte(seed))
	h[0] = h[0]&^1 | 2 // unicast, locally administered
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3], h[4], h[5])
}

func shortHash(seed string, n int) string {
	h := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(h[:])[:n]
}

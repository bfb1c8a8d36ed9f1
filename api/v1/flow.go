package v1

import (
	"strconv"
	"strings"
)

// Flow is one of ovs-vnet's flows as the switch holds it, with its counters
// and the object that owns it (GET /v1/flows).
type Flow struct {
	OwnerKind string `json:"owner_kind"`      // one of the Owner* kinds
	Owner     string `json:"owner,omitempty"` // the network's or port's name
	Host      string `json:"host,omitempty"`  // a remote port's host
	Table     uint8  `json:"table"`
	TableName string `json:"table_name"`
	Priority  uint16 `json:"priority"`
	Cookie    string `json:"cookie"` // 0x-prefixed hex
	Packets   uint64 `json:"n_packets"`
	Bytes     uint64 `json:"n_bytes"`
	// Drop is the reason a dropping flow stands for (docs/PIPELINE.md).
	Drop string `json:"drop,omitempty"`
	// Text is the flow as `ovs-ofctl -O OpenFlow13 dump-flows` prints it.
	Text string `json:"text"`
}

// FlowList is GET /v1/flows.
type FlowList struct {
	Flows []Flow `json:"flows"`
}

// Owner kinds as tools show them: what a flow's cookie says it belongs to.
const (
	OwnerPipeline = "pipeline" // the skeleton, no object's
	OwnerNetwork  = "network"  // a network's own flows
	OwnerRoutes   = "routes"   // a network's routes to its peers
	OwnerPort     = "port"
	OwnerRemote   = "remote port" // another host's port
	// OwnerRule is a security group's rule, named by RuleOwner.
	OwnerRule = "rule"
	// OwnerMember is a port's address in its security groups' address
	// sets (a local or a remote port's).
	OwnerMember = "member"
	// OwnerNAT carries floating IPs' and port forwards' packets to and
	// from the host: named by the target port, the forwarded host port
	// ("tcp/8080") or the floating address.
	OwnerNAT = "nat"
)

// RuleOwner is the name of the owner of a security group rule's flows
// (OwnerRule): the group's name and the rule's index, "db/2". A group's
// name has no '/'.
func RuleOwner(group string, index int) string {
	return group + "/" + strconv.Itoa(index)
}

// OwnerString names a flow's owner for people, as trace steps and
// `vnetctl flows` headings do: "pipeline", "network blue", "routes of
// network blue", "port web1", "remote port db2 on h2", "rule 2 of
// security group db", "member port db2 on h2".
func OwnerString(kind, name, host string) string {
	switch kind {
	case OwnerPipeline:
		return OwnerPipeline
	case OwnerRoutes:
		return "routes of network " + name
	case OwnerRule:
		if group, index, ok := strings.Cut(name, "/"); ok {
			return "rule " + index + " of security group " + group
		}
		return "rule of security group " + name
	case OwnerMember:
		if host == "" {
			return "member port " + name
		}
		return "member port " + name + " on " + host
	case OwnerRemote:
		if host == "" {
			return OwnerRemote + " " + name
		}
		return OwnerRemote + " " + name + " on " + host
	default:
		return kind + " " + name
	}
}

// Drop reasons: every flow (OVS) or rule (Linux) that drops names one, so
// that each reason has its own packet counter.
const (
	DropUnknownPort = "unknown_port" // in_port is none of our ports
	DropUnknownVNI  = "unknown_vni"  // from the tunnel with a VNI that is no network's
	DropSpoofed     = "spoofed"      // source MAC or IP (or ARP sender) is not the port's own
	DropIPv6        = "ipv6"         // networks are IPv4 only
	DropHost        = "from_host"    // the host sent what no network expects
	DropIsolated    = "isolated"     // to another network that no router joins to the source
	DropNoRoute     = "no_route"     // off-subnet, and the network does not masquerade
	DropNoNeighbor  = "no_neighbor"  // routed to an address no port has
	DropUnknownDst  = "unknown_dst"  // unicast to a MAC no port of the network has
	DropPolicy      = "policy"       // no rule of the port's security groups allows it
	DropDHCPOff     = "dhcp_off"     // DHCP from a port of a network with "dhcp": false
	DropDHCPServer  = "dhcp_server"  // a DHCP server message (UDP 67 → 68) from a port
)

// dropMeaning says, for people, what each drop reason means.
var dropMeaning = map[string]string{
	DropUnknownPort: "the packet came in on a port ovs-vnet does not know",
	DropUnknownVNI:  "it came from another host through the tunnel with a VNI that is no network's",
	DropSpoofed:     "its source MAC or IP is not the port's own (anti-spoofing)",
	DropIPv6:        "networks carry IPv4 only",
	DropHost:        "the host sent what no network expects",
	DropIsolated:    "no router joins the two networks (isolation)",
	DropNoRoute:     "the address is outside every network and the network does not masquerade",
	DropNoNeighbor:  "no port has the destination address",
	DropUnknownDst:  "no port of the network has the destination MAC",
	DropPolicy:      "no rule of the port's security groups allows it",
	DropDHCPOff:     "DHCP from a port of a network whose DHCP is off (\"dhcp\": false)",
	DropDHCPServer:  "a DHCP server message from a port: only ovs-vnet answers DHCP",
}

// DropMeaning is a drop reason's explanation for people.
func DropMeaning(reason string) string {
	if m, ok := dropMeaning[reason]; ok {
		return m
	}
	return reason
}

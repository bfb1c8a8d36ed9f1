// Package trace explains what a packet sent by a port does: which tables or
// host rules it meets, which of ovs-vnet's objects each one belongs to, and
// where it ends up (GET /v1/trace, `vnetctl trace`). On OVS the packet goes
// through the real pipeline (ofproto/trace); this package builds that packet
// and reads the answer. On Linux it reasons from the kernel's routes and the
// rules ovs-vnet installs, best-effort. It does no I/O itself.
package trace

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Protocols a query may ask for.
const (
	ProtoICMP = "icmp" // an echo request
	ProtoTCP  = "tcp"  // a SYN's headers
	ProtoUDP  = "udp"
)

// Verdicts: where the packet ends up.
const (
	Delivered = "delivered" // out of one port
	Flooded   = "flooded"   // broadcast: out of every other port of the network
	Answered  = "answered"  // by the gateway, in place (ARP or ping of a gateway address)
	ToHost    = "to_host"   // into the host's IP stack, which masquerades it to the outside
	Dropped   = "dropped"
)

// srcPort is the source port of traced TCP and UDP packets: an ephemeral
// one, as a client would pick.
const srcPort = 40000

// Query is the packet to trace: what port From would send to To.
type Query struct {
	From  string     `json:"from"`
	To    netip.Addr `json:"to"`
	Proto string     `json:"proto"` // icmp (default), tcp or udp
	DPort uint16     `json:"dport,omitempty"`
	// Src and SrcMAC replace the port's own addresses, to see what the
	// anti-spoofing rules do with a forged packet. Zero: the port's own.
	Src    netip.Addr `json:"src,omitzero"`
	SrcMAC string     `json:"src_mac,omitempty"`
}

// Check validates the query's own fields and fills in defaults.
func (q *Query) Check() error {
	if err := model.ValidateName(q.From); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if !q.To.Is4() {
		return fmt.Errorf("%w: to must be an IPv4 address, not %q", model.ErrInvalid, q.To)
	}
	if q.Src.IsValid() && !q.Src.Is4() {
		return fmt.Errorf("%w: src must be an IPv4 address, not %q", model.ErrInvalid, q.Src)
	}
	if q.SrcMAC != "" {
		mac, err := model.ParseMAC(q.SrcMAC)
		if err != nil {
			return fmt.Errorf("src_mac: %w", err)
		}
		q.SrcMAC = mac
	}
	switch q.Proto {
	case "":
		q.Proto = ProtoICMP
	case ProtoICMP, ProtoTCP, ProtoUDP:
	default:
		return fmt.Errorf("%w: proto must be icmp, tcp or udp, not %q", model.ErrInvalid, q.Proto)
	}
	if q.Proto == ProtoICMP && q.DPort != 0 {
		return fmt.Errorf("%w: dport applies to tcp and udp only", model.ErrInvalid)
	}
	if q.Proto != ProtoICMP && q.DPort == 0 {
		return fmt.Errorf("%w: %s needs a destination port (dport 1-65535)", model.ErrInvalid, q.Proto)
	}
	return nil
}

// Step is one decision on the packet's way.
type Step struct {
	// Table is the OpenFlow table (OVS), -1 for a step of the Linux backend.
	Table int `json:"table"`
	// Stage names where the decision is made: the table's name in the
	// pipeline (docs/PIPELINE.md) or, on Linux, the kernel's route lookup
	// or nftables chain.
	Stage    string   `json:"stage"`
	Priority int      `json:"priority,omitempty"`
	Owner    string   `json:"owner,omitempty"` // "port web1", "network blue", "routes of network blue", "pipeline"
	Match    string   `json:"match,omitempty"`
	Actions  []string `json:"actions,omitempty"`
	// Drop is the reason a dropping flow or rule names (pipeline.Drop*).
	Drop string `json:"drop,omitempty"`
}

// Result is the trace of one packet.
type Result struct {
	Backend string `json:"backend"`
	// Packet is what was traced: ovs-ofctl flow syntax on OVS, words on Linux.
	Packet  string   `json:"packet"`
	Steps   []Step   `json:"steps"`
	Verdict string   `json:"verdict"`
	Ports   []string `json:"ports,omitempty"`  // delivered or flooded to
	Reason  string   `json:"reason,omitempty"` // why dropped: a pipeline.Drop* reason
	Summary string   `json:"summary"`          // one sentence for people
	// BestEffort: no datapath traced the packet; the steps are reasoned
	// from routes and rules (the Linux backend).
	BestEffort bool `json:"best_effort,omitempty"`
	// Raw is the datapath's own trace (ofproto/trace's output).
	Raw string `json:"raw,omitempty"`
}

// dropMeaning says, for people, what each drop reason means.
var dropMeaning = map[string]string{
	pipeline.DropUnknownPort: "the packet came in on a port ovs-vnet does not know",
	pipeline.DropUnknownVNI:  "it came from another host through the tunnel with a VNI that is no network's",
	pipeline.DropSpoofed:     "its source MAC or IP is not the port's own (anti-spoofing)",
	pipeline.DropIPv6:        "networks carry IPv4 only",
	pipeline.DropHost:        "the host sent what no network expects",
	pipeline.DropIsolated:    "no router joins the two networks (isolation)",
	pipeline.DropNoRoute:     "the address is outside every network and the network does not masquerade",
	pipeline.DropNoNeighbor:  "no port has the destination address",
	pipeline.DropUnknownDst:  "no port of the network has the destination MAC",
}

// Meaning is the reason's explanation for people.
func Meaning(reason string) string {
	if m, ok := dropMeaning[reason]; ok {
		return m
	}
	return reason
}

// objects indexes a model for the lookups a trace makes.
type objects struct {
	m        pipeline.Model
	networks map[string]model.Network
	ports    map[string]model.Port
}

func index(m pipeline.Model) objects {
	o := objects{m: m, networks: map[string]model.Network{}, ports: map[string]model.Port{}}
	for _, n := range m.Networks {
		o.networks[n.Name] = n
	}
	for _, p := range m.Ports {
		o.ports[p.Name] = p
	}
	return o
}

// networkOf is the network whose subnet holds a.
func (o objects) networkOf(a netip.Addr) (model.Network, bool) {
	for _, n := range o.m.Networks {
		if n.Subnet.Contains(a) {
			return n, true
		}
	}
	return model.Network{}, false
}

// portWith is the port of network with address a: a local one, else one on
// another host.
func (o objects) portWith(network string, a netip.Addr) (model.Port, bool) {
	for _, p := range o.m.Ports {
		if p.Network == network && p.IP == a {
			return p, true
		}
	}
	for _, r := range o.m.Remote {
		if r.Port.Network == network && r.Port.IP == a {
			return r.Port, true
		}
	}
	return model.Port{}, false
}

// tunnelTarget names what a packet sent into the tunnel to the host at
// underlay address host reaches: the remote port with address to there, else
// the host (a flood group's bucket).
func (o objects) tunnelTarget(host, to netip.Addr) string {
	name := host.String()
	for _, r := range o.m.Remote {
		if r.HostIP != host {
			continue
		}
		if r.Port.IP == to {
			return remoteName(r.Port)
		}
		if r.Port.Host != "" {
			name = r.Port.Host
		}
	}
	return "host " + name
}

// remoteName is how a remote port is named in a trace.
func remoteName(p model.Port) string {
	if p.Host == "" {
		return p.Name
	}
	return p.Name + " on " + p.Host
}

// router names a router that lists both networks, "" if none does.
func (o objects) router(a, b string) string {
	for _, r := range o.m.Routers {
		var hasA, hasB bool
		for _, n := range r.Networks {
			hasA, hasB = hasA || n == a, hasB || n == b
		}
		if hasA && hasB {
			return r.Name
		}
	}
	return ""
}

// source is the port a query sends from, with the network it is in.
func (o objects) source(q Query) (model.Port, model.Network, error) {
	p, ok := o.ports[q.From]
	if !ok {
		return p, model.Network{}, fmt.Errorf("port %q is not attached", q.From)
	}
	n, ok := o.networks[p.Network]
	if !ok {
		return p, n, fmt.Errorf("port %q: network %q is not in the model", p.Name, p.Network)
	}
	return p, n, nil
}

// l4 is the transport part of the packet in words, for Linux's Packet.
func (q Query) l4() string {
	if q.Proto == ProtoICMP {
		return "icmp echo request"
	}
	return q.Proto + " dport " + strconv.Itoa(int(q.DPort))
}

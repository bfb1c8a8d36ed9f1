package v1

import (
	"fmt"
	"net/netip"
)

// Protocols a trace query may ask for.
const (
	ProtoICMP = "icmp" // an echo request
	ProtoTCP  = "tcp"  // a SYN's headers
	ProtoUDP  = "udp"
)

// Verdicts of a trace: where the packet ends up.
const (
	Delivered = "delivered" // out of one port
	Flooded   = "flooded"   // broadcast: out of every other port of the network
	Answered  = "answered"  // by the gateway, in place (ARP or ping of a gateway address)
	ToHost    = "to_host"   // into the host's IP stack, which masquerades it to the outside
	Dropped   = "dropped"
)

// Query is the packet to trace (GET /v1/trace): what port From would send to To,
// or, with FromAddress instead, what a host outside sends to one of this host's
// addresses or a floating IP (docs/DESIGN.md §8.5).
type Query struct {
	From string `json:"from"`
	// FromAddress is the outside sender's address. The controller
	// translates the packet as the host's NAT would, and hands the
	// backend's tracer the translated one (To and DPort the port's),
	// entering the networks from the host.
	FromAddress netip.Addr `json:"from_address,omitzero"`
	To          netip.Addr `json:"to"`
	Proto       string     `json:"proto"` // icmp (default), tcp or udp
	DPort       uint16     `json:"dport,omitempty"`
	// Src and SrcMAC replace the port's own addresses, to see what the
	// anti-spoofing rules do with a forged packet. Zero: the port's own.
	Src    netip.Addr `json:"src,omitzero"`
	SrcMAC string     `json:"src_mac,omitempty"`
}

// Check validates the query's own fields and fills in defaults.
func (q *Query) Check() error {
	switch {
	case q.FromAddress.IsValid() && q.From != "":
		return invalid("give from or from_address, not both")
	case q.FromAddress.IsValid() && !q.FromAddress.Is4():
		return invalid("from_address must be an IPv4 address, not %q", q.FromAddress)
	case q.FromAddress.IsValid() && (q.Src.IsValid() || q.SrcMAC != ""):
		return invalid("src and src_mac are a port's forgeries; from_address has none")
	case !q.FromAddress.IsValid():
		if err := ValidateName(q.From); err != nil {
			return fmt.Errorf("from: %w", err)
		}
	}
	if !q.To.Is4() {
		return invalid("to must be an IPv4 address, not %q", q.To)
	}
	if q.Src.IsValid() && !q.Src.Is4() {
		return invalid("src must be an IPv4 address, not %q", q.Src)
	}
	if q.SrcMAC != "" {
		mac, err := ParseMAC(q.SrcMAC)
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
		return invalid("proto must be icmp, tcp or udp, not %q", q.Proto)
	}
	if q.Proto == ProtoICMP && q.DPort != 0 {
		return invalid("dport applies to tcp and udp only")
	}
	if q.Proto != ProtoICMP && q.DPort == 0 {
		return invalid("%s needs a destination port (dport 1-65535)", q.Proto)
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
	// Drop is the reason a dropping flow or rule names (Drop*).
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
	Reason  string   `json:"reason,omitempty"` // why dropped: a Drop* reason
	Summary string   `json:"summary"`          // one sentence for people
	// BestEffort: no datapath traced the packet; the steps are reasoned
	// from routes and rules (the Linux backend).
	BestEffort bool `json:"best_effort,omitempty"`
	// Raw is the datapath's own trace (ofproto/trace's output).
	Raw string `json:"raw,omitempty"`
}

package dhcp

import "sync/atomic"

// Message types a port sends (Verdict.Type): the metric's label values.
const (
	TypeDiscover = "discover"
	TypeRequest  = "request"
	TypeDecline  = "decline"
	TypeRelease  = "release"
	TypeInform   = "inform"
	TypeOther    = "other" // a type no client sends (OFFER, ACK, …)
)

// Answers (Verdict.Answer).
const (
	AnswerOffer = "offer"
	AnswerAck   = "ack"
	AnswerNak   = "nak"
)

// Reasons a frame gets no answer, or a NAK (Verdict.Reason). The last six
// are the backends' to give (Counters.Refuse): they are decided before, or
// after, Answer.
const (
	// ReasonMalformed: not Ethernet, IPv4 and UDP 68→67 carrying a whole
	// DHCP request, or one the DHCP library cannot read.
	ReasonMalformed = "malformed"
	// ReasonUnknownMAC: the Ethernet source or the client hardware address
	// is not the port's MAC.
	ReasonUnknownMAC = "unknown_mac"
	// ReasonWrongSource: the IPv4 source is neither 0.0.0.0 nor the port's
	// address (nor, for a REQUEST, its ciaddr).
	ReasonWrongSource = "wrong_source"
	// ReasonRelayed: giaddr is set; nothing relays onto a network's links.
	ReasonRelayed = "relayed"
	// ReasonWrongAddress: a REQUEST (NAKed) or an INFORM for an address
	// that is not the port's, a renewal of one included.
	ReasonWrongAddress = "wrong_address"
	// ReasonNotForUs: a REQUEST that chose another server (RFC 2131 §4.3.2).
	ReasonNotForUs = "not_for_us"
	// ReasonUnsupported: a message type clients do not send.
	ReasonUnsupported = "unsupported"

	// ReasonUnknownPort: the frame came in on no port the backend knows
	// now (a port detached meanwhile), or on one of another network.
	ReasonUnknownPort = "unknown_port"
	// ReasonDHCPOff: the port's network has "dhcp": false.
	ReasonDHCPOff = "dhcp_off"
	// ReasonRateLimited: over the port's or the host's rate.
	ReasonRateLimited = "rate_limited"
	// ReasonQueueFull: dropped waiting for the responder.
	ReasonQueueFull = "queue_full"
	// ReasonSendFailed: the answer could not be sent.
	ReasonSendFailed = "send_failed"
)

var (
	types   = [...]string{TypeDiscover, TypeRequest, TypeDecline, TypeRelease, TypeInform, TypeOther}
	answers = [...]string{AnswerOffer, AnswerAck, AnswerNak}
	reasons = [...]string{ReasonMalformed, ReasonUnknownMAC, ReasonWrongSource, ReasonRelayed,
		ReasonWrongAddress, ReasonNotForUs, ReasonUnsupported, ReasonUnknownPort, ReasonDHCPOff,
		ReasonRateLimited, ReasonQueueFull, ReasonSendFailed}
)

// Verdict names what a frame was (Type, "" when it was not read that
// far), what answered it (Answer, "" for nothing) and why it got no
// answer, or a NAK (Reason, "" when it was answered as asked).
type Verdict struct {
	Type, Answer, Reason string
}

// Counters count verdicts, by name; safe for concurrent use. The zero
// value counts from zero.
type Counters struct {
	types   [len(types)]atomic.Uint64
	answers [len(answers)]atomic.Uint64
	reasons [len(reasons)]atomic.Uint64
}

// Count adds one verdict.
func (c *Counters) Count(v Verdict) {
	add(c.types[:], types[:], v.Type)
	add(c.answers[:], answers[:], v.Answer)
	add(c.reasons[:], reasons[:], v.Reason)
}

// Refuse counts a frame a backend refused before, or without, Answer.
func (c *Counters) Refuse(reason string) { add(c.reasons[:], reasons[:], reason) }

// Snapshot is a copy of the counters, by name; every name is there, zero
// included, so that rates work from the first scrape.
type Snapshot struct {
	Requests, Answers, Refused map[string]uint64
}

// Snapshot copies the counters.
func (c *Counters) Snapshot() Snapshot {
	return Snapshot{
		Requests: snapshot(c.types[:], types[:]),
		Answers:  snapshot(c.answers[:], answers[:]),
		Refused:  snapshot(c.reasons[:], reasons[:]),
	}
}

func add(counts []atomic.Uint64, names []string, name string) {
	for i, n := range names {
		if n == name {
			counts[i].Add(1)
			return
		}
	}
}

func snapshot(counts []atomic.Uint64, names []string) map[string]uint64 {
	m := make(map[string]uint64, len(names))
	for i, n := range names {
		m[n] = counts[i].Load()
	}
	return m
}

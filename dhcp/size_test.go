package dhcp

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// maxClientID is the longest client identifier (option 61) the largest
// answer leaves room to echo: RFC 4361's type, IAID and a DUID of the
// usual kinds (DUID-LLT 14 bytes, DUID-UUID 18) fit in it.
const maxClientID = 32

// TestLargestAnswerFits: RFC 2131 §2 promises a server only that a client
// takes a 576-byte IP datagram, unless the client's option 57 says more
// (and nothing here reads it). The largest network a spec may describe
// (v1.MaxDNS servers, a domain of v1.MaxDomain characters) with the
// longest client identifier echoed must stay within that, in every
// answer; one more character of domain must not.
func TestLargestAnswerFits(t *testing.T) {
	largest := func(domainLen int) Binding {
		b := testBinding()
		b.DNS = nil
		for i := range v1.MaxDNS {
			b.DNS = append(b.DNS, netip.AddrFrom4([4]byte{10, 81, 0, byte(100 + i)}))
		}
		// One-letter labels (the first of two for an even length): a
		// valid name of exactly domainLen characters.
		b.Domain = strings.Repeat("a", 2-domainLen%2) + strings.Repeat(".a", (domainLen-1)/2)
		if len(b.Domain) != domainLen {
			t.Fatalf("domain of %d characters for %d", len(b.Domain), domainLen)
		}
		return b
	}
	id := bytes.Repeat([]byte{0xff}, maxClientID)
	requests := []client{
		{t: dhcpv4.MessageTypeDiscover, clientID: id},
		{t: dhcpv4.MessageTypeRequest, requested: portIP, server: gwIP, clientID: id},
		{t: dhcpv4.MessageTypeRequest, src: portIP, ciaddr: portIP, clientID: id},
		{t: dhcpv4.MessageTypeInform, src: portIP, ciaddr: portIP, clientID: id},
	}
	size := func(b Binding) (most int) {
		for _, c := range requests {
			out, v := Answer(c.frame(t), b)
			if out == nil || v.Reason != "" {
				t.Fatalf("%v: no answer (%+v)", c.t, v)
			}
			most = max(most, len(out)-ethLen)
		}
		return most
	}
	if got := size(largest(v1.MaxDomain)); got > 576 {
		t.Errorf("the largest answer is a %d-byte IP datagram, more than 576", got)
	}
	if got := size(largest(v1.MaxDomain + 1)); got <= 576 {
		t.Errorf("with a domain of %d characters the largest answer is %d bytes: v1.MaxDomain could be larger", v1.MaxDomain+1, got)
	}
}

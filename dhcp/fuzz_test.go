package dhcp

import (
	"bytes"
	"slices"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzAnswer feeds Answer what a port may send: it never panics, and an
// answer is always a well-formed DHCP reply to the binding's port that
// offers nothing but the binding's address.
func FuzzAnswer(f *testing.F) {
	for _, c := range []client{
		{t: dhcpv4.MessageTypeDiscover},
		{t: dhcpv4.MessageTypeRequest, requested: portIP, server: gwIP},
		{t: dhcpv4.MessageTypeRequest, src: portIP, ciaddr: portIP},
		{t: dhcpv4.MessageTypeRequest, requested: otherIP},
		{t: dhcpv4.MessageTypeInform, src: portIP, ciaddr: portIP},
		{t: dhcpv4.MessageTypeRelease, ciaddr: portIP},
	} {
		f.Add(c.frame(f))
	}
	f.Add([]byte{})
	b := testBinding()
	f.Fuzz(func(t *testing.T, frame []byte) {
		out, v := Answer(frame, b)
		for _, name := range []struct {
			value string
			set   []string
		}{{v.Type, types[:]}, {v.Answer, answers[:]}, {v.Reason, reasons[:]}} {
			if name.value != "" && !slices.Contains(name.set, name.value) {
				t.Fatalf("verdict %+v names %q", v, name.value)
			}
		}
		if (out == nil) != (v.Answer == "") {
			t.Fatalf("answer %x with verdict %+v", out, v)
		}
		if out == nil {
			return
		}
		h, payload, err := ParseFrame(out)
		if err != nil {
			t.Fatalf("answer frame: %v", err)
		}
		m, err := dhcpv4.FromBytes(payload)
		if err != nil {
			t.Fatalf("answer message: %v", err)
		}
		if h.SrcPort != ServerPort || h.DstPort != ClientPort || h.SrcIP != b.Gateway {
			t.Fatalf("answer header %+v", h)
		}
		if !bytes.Equal(h.DstMAC, b.MAC) && !bytes.Equal(h.DstMAC, broadcastMAC) {
			t.Fatalf("answer to %v", h.DstMAC)
		}
		if !bytes.Equal(m.ClientHWAddr, b.MAC) {
			t.Fatalf("answer for chaddr %v", m.ClientHWAddr)
		}
		if y := addr(m.YourIPAddr); y != b.IP && y != zeroIP {
			t.Fatalf("answer offers %v", y)
		}
	})
}

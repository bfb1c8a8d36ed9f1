package dhcp

import (
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestDeclines: only a DECLINE Answer accepted as the port's is logged,
// once a port a minute, and what is remembered does not grow.
func TestDeclines(t *testing.T) {
	b := testBinding()
	verdict := func(c client) Verdict {
		_, v := Answer(c.frame(t), b)
		return v
	}
	own := verdict(client{t: dhcpv4.MessageTypeDecline, requested: portIP, server: gwIP})
	t0 := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	var d Declines
	for _, c := range []struct {
		name string
		port string
		v    Verdict
		at   time.Duration
		want bool
	}{
		{"another chaddr", "a", verdict(client{t: dhcpv4.MessageTypeDecline, chaddr: otherMAC, requested: portIP, server: gwIP}), 0, false},
		{"another Ethernet source", "a", verdict(client{t: dhcpv4.MessageTypeDecline, ethSrc: otherMAC, requested: portIP, server: gwIP}), 0, false},
		{"a wrong source", "a", verdict(client{t: dhcpv4.MessageTypeDecline, src: otherIP, requested: portIP, server: gwIP}), 0, false},
		{"not a decline", "a", verdict(client{t: dhcpv4.MessageTypeRelease, src: portIP, ciaddr: portIP, server: gwIP}), 0, false},
		{"the port's own", "a", own, 0, true},
		{"again within the minute", "a", own, 59 * time.Second, false},
		{"another port's own", "b", own, 59 * time.Second, true},
		{"a minute on", "a", own, time.Minute, true},
		{"b again within its minute", "b", own, 90 * time.Second, false},
	} {
		if got := d.Warn(c.port, c.v, t0.Add(c.at)); got != c.want {
			t.Errorf("%s (port %s, verdict %+v, at +%v): warn %v, want %v", c.name, c.port, c.v, c.at, got, c.want)
		}
	}
	// b's entry is older than a minute by now: c's warning forgets it.
	d.Warn("c", own, t0.Add(3*time.Minute))
	if len(d.warned) != 1 {
		t.Errorf("remembered %v, want c only", d.warned)
	}
}

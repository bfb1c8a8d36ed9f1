package exporter

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
)

func staticDHCP(s datapath.DHCPStats) func(context.Context) (datapath.DHCPStats, error) {
	return func(context.Context) (datapath.DHCPStats, error) { return s, nil }
}

// sampleDHCP is what a backend reports: every name package dhcp counts,
// most at 0, after one lease, a renewal and a flood.
func sampleDHCP() datapath.DHCPStats {
	var c dhcp.Counters
	c.Count(dhcp.Verdict{Type: dhcp.TypeDiscover, Answer: dhcp.AnswerOffer})
	c.Count(dhcp.Verdict{Type: dhcp.TypeRequest, Answer: dhcp.AnswerAck})
	c.Count(dhcp.Verdict{Type: dhcp.TypeRequest, Answer: dhcp.AnswerAck})
	c.Count(dhcp.Verdict{Type: dhcp.TypeRequest, Answer: dhcp.AnswerNak, Reason: dhcp.ReasonWrongAddress})
	c.Count(dhcp.Verdict{Type: dhcp.TypeDiscover, Reason: dhcp.ReasonUnknownMAC})
	for range 30 {
		c.Refuse(dhcp.ReasonRateLimited)
	}
	s := c.Snapshot()
	return datapath.DHCPStats{Requests: s.Requests, Answers: s.Answers, Refused: s.Refused}
}

// TestDHCP: every name the backend reports is a series from 0, and a
// refusal the switch counts stays a counter when the switch starts it
// again (ovs-vswitchd restarted, or a port's meter gone with its port).
func TestDHCP(t *testing.T) {
	var snap atomic.Pointer[datapath.DHCPStats]
	set := func(s datapath.DHCPStats) { snap.Store(&s) }
	src := &fakeSource{dhcp: func(context.Context) (datapath.DHCPStats, error) { return *snap.Load(), nil }}
	reg, _ := newRegistry(t, src, Options{})

	set(sampleDHCP())
	fams := gather(t, reg)
	for metric, label := range map[string]string{
		"ovs_vnet_dhcp_requests_total": "type=", "ovs_vnet_dhcp_answers_total": "type=", "ovs_vnet_dhcp_refused_total": "reason=",
	} {
		want := map[string]int{"ovs_vnet_dhcp_requests_total": 6, "ovs_vnet_dhcp_answers_total": 3, "ovs_vnet_dhcp_refused_total": 12}[metric]
		if n := len(fams[metric].GetMetric()); n != want {
			t.Errorf("%s: %d series, want %d (every %s value from 0)", metric, n, want, label)
		}
	}
	for _, c := range []struct {
		metric, label string
		want          float64
	}{
		{"ovs_vnet_dhcp_requests_total", "type=request", 3},
		{"ovs_vnet_dhcp_requests_total", "type=inform", 0},
		{"ovs_vnet_dhcp_answers_total", "type=ack", 2},
		{"ovs_vnet_dhcp_answers_total", "type=nak", 1},
		{"ovs_vnet_dhcp_refused_total", "reason=rate_limited", 30},
		{"ovs_vnet_dhcp_refused_total", "reason=queue_full", 0},
	} {
		if v, ok := value(fams, c.metric, c.label); !ok || v != c.want {
			t.Errorf("%s{%s} = %v (present %v), want %v", c.metric, c.label, v, ok, c.want)
		}
	}

	// As a drop reason's sum (dropMemo): a fall keeps what was counted,
	// and what is counted after it adds.
	s := sampleDHCP()
	s.Refused[dhcp.ReasonRateLimited] = 4 // a port's meter went with its port
	set(s)
	if v, _ := value(gather(t, reg), "ovs_vnet_dhcp_refused_total", "reason=rate_limited"); v != 30 {
		t.Errorf("rate_limited after a fall: %v, want 30 kept", v)
	}
	s.Refused[dhcp.ReasonRateLimited] = 10
	set(s)
	if v, _ := value(gather(t, reg), "ovs_vnet_dhcp_refused_total", "reason=rate_limited"); v != 36 {
		t.Errorf("rate_limited after 6 more: %v, want 36", v)
	}
}

// TestDHCPFailing: a backend without DHCP, or one that fails, costs the
// dhcp collector's series and counts its error; the rest is served.
func TestDHCPFailing(t *testing.T) {
	src := &fakeSource{ports: staticPorts(port("a", "blue", 0)),
		dhcp: func(context.Context) (datapath.DHCPStats, error) {
			return datapath.DHCPStats{}, errors.New("unsupported")
		}}
	reg, _ := newRegistry(t, src, Options{PerPort: true})
	fams := gather(t, reg)
	if _, ok := fams["ovs_vnet_dhcp_requests_total"]; ok {
		t.Error("DHCP series from a failing source")
	}
	if v, _ := value(fams, "ovs_vnet_scrape_errors_total", "collector=dhcp"); v != 1 {
		t.Errorf("scrape errors of dhcp: %v, want 1", v)
	}
	if _, ok := value(fams, "ovs_vnet_port_rx_packets_total", "network=blue", "port=a"); !ok {
		t.Error("the ports' series went with the failing DHCP source")
	}
}

package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDHCPFlood is issue 22's flood acceptance, on each backend: while
// port f sends 2,000 DISCOVERs a second for 5 s, port g's DHCP is answered
// within 1 s each time and the API answers within 1 s; the flood is
// refused by the rate limits (docs/DHCP.md), and f is answered again once
// it stops.
//
// "Within 1 s" is udhcpc's own timing, not a clock of the test's: with
// -T 1 it sends the next DISCOVER, or SELECT, only after 1 s without an
// answer, so a log with exactly one "broadcasting discover" and one
// "broadcasting select" line and a lease proves that both answers came
// within 1 s (busybox 1.35 sends the SELECT up to 3 times whatever -t
// says, so a lease alone would allow 3 s).
func TestDHCPFlood(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			needStaticBusybox(t)
			hostNS := newNetns(t, "vnt-dhf-")
			args, _ := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/dh-f", `{"subnet":"10.82.0.0/24"}`, 201, nil)
			nsF, nsG := newNetns(t, "vnt-dhff-"), newNetns(t, "vnt-dhfg-")
			var f, g portView
			d.must("PUT", "/v1/ports/f", map[string]any{"network": "dh-f", "netns": nsF, "configure": false}, 201, &f)
			d.must("PUT", "/v1/ports/g", map[string]any{"network": "dh-f", "netns": nsG, "configure": false}, 201, &g)
			gIP, _, _ := strings.Cut(g.IP, "/")
			api := &http.Client{Timeout: time.Second, Transport: d.client.Transport}

			before := dhcpCounters(t, d)
			const rate, lasts = 2000, 5 * time.Second
			type result struct {
				r   dhcpReport
				err error
			}
			flood := make(chan result, 1)
			start := time.Now()
			go func() {
				r, err := dhcpSendFrom(nsF, dhcpOrder{Ifname: "eth0", Type: "discover", EthSrc: f.MAC, Chaddr: f.MAC, Rate: rate, For: lasts})
				flood <- result{r, err}
			}()
			// Past f's burst, so that the limits are biting.
			time.Sleep(500 * time.Millisecond)
			for round := range 5 {
				if time.Since(start) > lasts {
					t.Fatalf("round %d began after the flood ended: the machine is too slow for this test to prove anything", round)
				}
				ok, events, log := runUdhcpc(t, nsG, "-f", "-q", "-n", "-t", "1", "-T", "1", "-A", "0")
				discovers, selects := strings.Count(log, "broadcasting discover"), strings.Count(log, "broadcasting select")
				if !ok || discovers != 1 || selects != 1 {
					t.Errorf("round %d: lease %v, %d DISCOVERs and %d SELECTs sent, want a lease after one of each; log:\n%s", round, ok, discovers, selects, log)
				} else if e := lastEvent(t, events, "bound"); e.Fields["ip"] != gIP {
					t.Errorf("round %d: bound %v, want ip %s", round, e, gIP)
				}
				resp, err := api.Get(d.base + "/v1/info")
				if err != nil {
					t.Errorf("round %d: GET /v1/info during the flood: %v", round, err)
				} else {
					resp.Body.Close()
				}
			}
			res := <-flood
			if res.err != nil {
				t.Fatal(res.err)
			}
			sent := res.r
			t.Logf("the flood: %d DISCOVERs sent in %s, %d answers back", sent.Sent, time.Since(start).Round(time.Millisecond), len(sent.Replies))
			if sent.Sent < rate*4 {
				t.Fatalf("the sender sent %d frames, not the %d of 2,000/s for 5 s", sent.Sent, rate*5)
			}
			// The limits let the burst and 10/s through: about 70 in 5 s.
			// On Linux the last frames are counted once the port's reader
			// is back from its pause (100 ms) and has drained them.
			var refused float64
			for end := time.Now().Add(time.Second); ; time.Sleep(100 * time.Millisecond) {
				after := dhcpCounters(t, d)
				refused = after["refused{rate_limited}"] + after["refused{queue_full}"] - before["refused{rate_limited}"] - before["refused{queue_full}"]
				if refused >= float64(sent.Sent-100) || time.Now().After(end) {
					break
				}
			}
			if refused < float64(sent.Sent-100) {
				t.Errorf("%v of the flood's %d frames refused as rate_limited or queue_full, want all but 100 at most", refused, sent.Sent)
			}
			if n := len(sent.Replies); n > 100 {
				t.Errorf("the flooding port got %d answers, want the limits' 70 or so", n)
			}

			// Once the flood stops, f's tokens come back at 10/s.
			var r dhcpReport
			for try := 0; try < 3 && len(r.Replies) == 0; try++ {
				time.Sleep(time.Second)
				r = dhcpSend(t, nsF, dhcpOrder{Ifname: "eth0", Type: "discover", EthSrc: f.MAC, Chaddr: f.MAC, Wait: 2 * time.Second})
			}
			if len(r.Replies) == 0 || r.Replies[0].Type != "offer" {
				t.Errorf("f after its flood: %v, want an offer", r.Replies)
			}
		})
	}
}

package dhcp

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	start := time.Unix(1000, 0)
	l := NewLimiter(10, 20, 50, 30)
	allowed := func(port string, at time.Time, n int) int {
		got := 0
		for range n {
			if l.Allow(port, at) {
				got++
			}
		}
		return got
	}
	// A flooding port gets its burst, then nothing at the same instant.
	if got := allowed("flood", start, 100); got != 20 {
		t.Fatalf("flood at once: %d allowed, want the burst of 20", got)
	}
	// Another port still has its own bucket, and the host's has 10 left.
	if got := allowed("quiet", start, 5); got != 5 {
		t.Fatalf("quiet port during the flood: %d of 5 allowed", got)
	}
	// A second later the flooding port got 10 tokens back.
	if got := allowed("flood", start.Add(time.Second), 100); got != 10 {
		t.Fatalf("flood a second later: %d allowed, want 10", got)
	}
	// The host's bucket bounds all ports together: fresh ports at the
	// same instant share what it holds.
	l = NewLimiter(10, 20, 50, 30)
	total := 0
	for _, p := range []string{"a", "b", "c"} {
		total += allowed(p, start, 20)
	}
	if total != 30 {
		t.Fatalf("three ports' bursts: %d allowed, want the host's 30", total)
	}
	// Time going backwards adds nothing.
	if got := allowed("a", start.Add(-time.Hour), 5); got != 0 {
		t.Fatalf("backwards clock: %d allowed", got)
	}
	// A forgotten port starts full again.
	l = NewLimiter(10, 20, 1000, 1000)
	allowed("a", start, 20)
	l.Forget("a")
	if got := allowed("a", start, 20); got != 20 {
		t.Fatalf("after Forget: %d allowed, want a full burst", got)
	}
}

// TestLimiterAllowHost: the host's bucket alone, the same one Allow
// takes from: its burst at once, its rate a second later, whatever the
// ports' buckets hold.
func TestLimiterAllowHost(t *testing.T) {
	start := time.Unix(1000, 0)
	l := NewLimiter(1, 1, 50, 30)
	host := func(at time.Time, n int) int {
		got := 0
		for range n {
			if l.AllowHost(at) {
				got++
			}
		}
		return got
	}
	if got := host(start, 100); got != 30 {
		t.Fatalf("at once: %d allowed, want the host's burst of 30", got)
	}
	if got := host(start.Add(time.Second), 100); got != 30 {
		t.Fatalf("a second later: %d allowed, want 30 (the rate of 50 capped by the burst)", got)
	}
	if got := host(start.Add(1200*time.Millisecond), 100); got != 10 {
		t.Fatalf("200 ms later: %d allowed, want 10", got)
	}
	if l.Allow("a", start.Add(1200*time.Millisecond)) {
		t.Fatal("Allow passed with the host's bucket empty")
	}
}

func TestCounters(t *testing.T) {
	var c Counters
	c.Count(Verdict{TypeDiscover, AnswerOffer, ""})
	c.Count(Verdict{TypeRequest, AnswerNak, ReasonWrongAddress})
	c.Count(Verdict{"", "", ReasonMalformed})
	c.Refuse(ReasonRateLimited)
	c.Refuse("no such reason")
	s := c.Snapshot()
	if len(s.Requests) != len(types) || len(s.Answers) != len(answers) || len(s.Refused) != len(reasons) {
		t.Fatalf("snapshot lacks names: %+v", s)
	}
	check := func(m map[string]uint64, name string, want uint64) {
		t.Helper()
		if m[name] != want {
			t.Errorf("%s = %d, want %d", name, m[name], want)
		}
	}
	check(s.Requests, TypeDiscover, 1)
	check(s.Requests, TypeRequest, 1)
	check(s.Requests, TypeRelease, 0)
	check(s.Answers, AnswerOffer, 1)
	check(s.Answers, AnswerNak, 1)
	check(s.Refused, ReasonWrongAddress, 1)
	check(s.Refused, ReasonMalformed, 1)
	check(s.Refused, ReasonRateLimited, 1)
}

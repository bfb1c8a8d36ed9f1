package dhcp

import (
	"sync"
	"time"
)

// Rates of DHCP a host answers, in packets per second and packets of
// burst: per port, about thirty times what a booting client sends (a
// packet every few seconds), and per host, what the responder answers in
// a few milliseconds a second. The OVS backend's meters have the same
// numbers (flows/pipeline), the Linux backend's Limiter these.
const (
	PortRate  = 10
	PortBurst = 20
	HostRate  = 500
	HostBurst = 100
)

// Limiter is a token bucket per port and one for the host, so that a port
// flooding requests spends its own budget and not the other ports'. Safe
// for concurrent use; time comes from the caller.
type Limiter struct {
	mu                  sync.Mutex
	rate, burst         float64
	hostRate, hostBurst float64
	host                bucket
	ports               map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter makes a limiter with the rates given (packets per second)
// and bursts (packets); every bucket starts full.
func NewLimiter(rate, burst, hostRate, hostBurst float64) *Limiter {
	return &Limiter{rate: rate, burst: burst, hostRate: hostRate, hostBurst: hostBurst,
		host: bucket{tokens: hostBurst}, ports: map[string]*bucket{}}
}

// Allow takes a token from port's bucket and the host's at now, and tells
// whether both had one. A packet refused by the host's bucket leaves the
// port's token taken: a port over the host's rate is sending a lot.
func (l *Limiter) Allow(port string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.ports[port]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.ports[port] = b
	}
	if !b.take(now, l.rate, l.burst) {
		return false
	}
	return l.host.take(now, l.hostRate, l.hostBurst)
}

// AllowHost takes a token from the host's bucket alone at now, and tells
// whether it had one: for a backend whose switch bounds each port itself
// (OVS: the ports' meters), so that both backends bound the host with
// this one bucket.
func (l *Limiter) AllowHost(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.host.take(now, l.hostRate, l.hostBurst)
}

// Forget drops port's bucket, when the port goes.
func (l *Limiter) Forget(port string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.ports, port)
}

func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

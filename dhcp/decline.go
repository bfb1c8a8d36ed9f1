package dhcp

import (
	"sync"
	"time"
)

// DeclineEvery is how often, at most, a port's DECLINE is worth a warning.
const DeclineEvery = time.Minute

// Declines decides which DECLINEs a backend logs. A DECLINE says that
// someone else answers ARP for the port's address, which anti-spoofing
// makes impossible: worth a warning, but only when Answer took the frame
// for the port's own (a DECLINE with another port's chaddr or from a
// wrong source is a port's attempt to raise a false alarm), and at most
// once a port per DeclineEvery, since a port may send ten a second. Safe
// for concurrent use; the zero value is ready. It remembers only the ports
// warned of in the last DeclineEvery.
type Declines struct {
	mu     sync.Mutex
	warned map[string]time.Time
}

// Warn tells whether to log v, the verdict of a frame of port at now.
func (d *Declines) Warn(port string, v Verdict, now time.Time) bool {
	if v.Type != TypeDecline || v.Reason != "" {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if last, ok := d.warned[port]; ok && now.Sub(last) < DeclineEvery {
		return false
	}
	for p, last := range d.warned {
		if now.Sub(last) >= DeclineEvery {
			delete(d.warned, p)
		}
	}
	if d.warned == nil {
		d.warned = map[string]time.Time{}
	}
	d.warned[port] = now
	return true
}

package testbed

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// Stream is a TCP stream out of a network namespace that one end writes
// without end and the other counts: the witness that a connection keeps
// passing, or that a change cut it.
type Stream struct {
	received atomic.Int64
}

// Pace is how a stream's writer sends: Chunk bytes a write, Pause between
// writes (0: as fast as it can).
type Pace struct {
	Chunk int
	Pause time.Duration
}

// StartStream listens at to in namespace server and connects to it from
// namespace client, waiting at most wait; the client writes at pace, or
// with download the server does (the bulk then flows in the connection's
// reply direction), and the other end counts. Both ends close when the
// test ends.
func StartStream(tb testing.TB, client, server string, to netip.AddrPort, download bool, pace Pace, wait time.Duration) *Stream {
	tb.Helper()
	ln := Listen(tb, server, to)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := Connect(client, to, wait)
	if err != nil {
		tb.Fatalf("stream to %s: %v", to, err)
	}
	tb.Cleanup(func() { c.Close() })
	sc, ok := <-accepted
	if !ok {
		tb.Fatalf("stream to %s: not accepted", to)
	}
	tb.Cleanup(func() { sc.Close() })
	s := &Stream{}
	from, into := c, sc
	if download {
		from, into = sc, c
	}
	go s.count(into)
	go pace.write(from)
	return s
}

// StartEchoStream connects from namespace client to a TCP echo service at
// to, waiting at most wait, writes to it at pace and counts what comes
// back: the stream passes the policy both ways. It closes when the test
// ends.
func StartEchoStream(tb testing.TB, client string, to netip.AddrPort, pace Pace, wait time.Duration) *Stream {
	tb.Helper()
	c, err := Connect(client, to, wait)
	if err != nil {
		tb.Fatalf("stream to %s: %v", to, err)
	}
	tb.Cleanup(func() { c.Close() })
	s := &Stream{}
	go pace.write(c)
	go s.count(c)
	return s
}

// write sends on c until it fails.
func (p Pace) write(c net.Conn) {
	buf := make([]byte, p.Chunk)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
		if p.Pause > 0 {
			time.Sleep(p.Pause)
		}
	}
}

// count receives from c until it fails.
func (s *Stream) count(c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		s.received.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// Received is how many bytes have arrived so far.
func (s *Stream) Received() int64 {
	return s.received.Load()
}

// WaitPast waits, at most within, until more than n bytes have arrived in
// all, and tells whether they did.
func (s *Stream) WaitPast(n int64, within time.Duration) bool {
	for deadline := time.Now().Add(within); s.received.Load() <= n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// WaitStalled waits until no byte has arrived for quiet, and returns when
// the last byte came (since, if none came after it). It fails the test if
// bytes still come within after since.
func (s *Stream) WaitStalled(tb testing.TB, since time.Time, quiet, within time.Duration) time.Time {
	tb.Helper()
	last, lastAt := s.received.Load(), since
	for time.Since(lastAt) < quiet {
		if time.Since(since) > within {
			tb.Fatalf("the stream still flows %v after the wait began (%d bytes)", within, s.received.Load())
		}
		time.Sleep(10 * time.Millisecond)
		if n := s.received.Load(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	return lastAt
}

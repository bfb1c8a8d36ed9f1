package ovs

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// stream is a TCP stream between two namespaces: one side writes as fast
// as it can, the other counts.
type stream struct {
	received atomic.Int64
}

// startStream connects from nsFrom to a listener at to in nsTo: an upload
// (the opener writes) or a download (the opener reads).
func startStream(t *testing.T, nsFrom, nsTo string, to netip.AddrPort, download bool) *stream {
	t.Helper()
	var ln net.Listener
	if err := testbed.InNetns(nsTo, func() (err error) {
		ln, err = net.Listen("tcp4", to.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &stream{}
	writer, reader := s.write, s.count
	if download {
		writer, reader = reader, writer
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		reader(c)
	}()
	var c net.Conn
	if err := testbed.InNetns(nsFrom, func() (err error) {
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), probeTimeout)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go writer(c)
	return s
}

// write sends on c until it fails.
func (s *stream) write(c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// count receives from c until it fails.
func (s *stream) count(c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		s.received.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// waitFlowing waits, generously bounded, for bytes to arrive.
func (s *stream) waitFlowing(t *testing.T) {
	t.Helper()
	eventually(t, "stream flowing", func() bool { return s.received.Load() > 1<<20 })
}

// waitStalled waits, generously bounded, until no byte has arrived for a
// while, and returns how long after the call the last byte came.
func (s *stream) waitStalled(t *testing.T) time.Duration {
	t.Helper()
	const quiet, bound = 500 * time.Millisecond, 10 * time.Second
	start := time.Now()
	last, lastAt := s.received.Load(), time.Now()
	for time.Since(lastAt) < quiet {
		if time.Since(start) > bound {
			t.Fatalf("the stream still flows %v after the rule was removed (%d bytes)", bound, s.received.Load())
		}
		time.Sleep(20 * time.Millisecond)
		if n := s.received.Load(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	return lastAt.Sub(start)
}

package linux

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// Probes of TestSecurityGroupsKernel: real sockets opened in the ports'
// namespaces.

// The ports' services: TCP echo on 80 and 5432, UDP echo on 5000; 5001
// is closed, so a datagram to it draws an ICMP port unreachable.
const (
	sgHTTP, sgPG, sgUDP, sgUDPClosed = 80, 5432, 5000, 5001
	// probeWait bounds a probe: the namespaces are on one host, so an
	// answer that comes at all comes in microseconds.
	probeWait = time.Second
)

// serve runs the ports' services in netns until the test ends.
func serve(t *testing.T, netns string) {
	t.Helper()
	var closers []io.Closer
	err := testbed.InNetns(netns, func() error {
		for _, port := range []int{sgHTTP, sgPG} {
			l, err := net.Listen("tcp4", fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			closers = append(closers, l)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
				}
			}()
		}
		u, err := net.ListenPacket("udp4", fmt.Sprintf(":%d", sgUDP))
		if err != nil {
			return err
		}
		closers = append(closers, u)
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := u.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = u.WriteTo(buf[:n], from)
			}
		}()
		return nil
	})
	t.Cleanup(func() {
		for _, c := range closers {
			c.Close()
		}
	})
	if err != nil {
		t.Fatalf("serve in %s: %v", netns, err)
	}
}

// tcpEcho connects from netns and has a byte echoed: the handshake and
// the data both ways.
func tcpEcho(netns string, dst netip.Addr, port int) bool {
	var c net.Conn
	err := testbed.InNetns(netns, func() (err error) {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(dst, uint16(port)).String(), probeWait)
		return err
	})
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeWait))
	buf := []byte{'x'}
	if _, err := c.Write(buf); err != nil {
		return false
	}
	_, err = io.ReadFull(c, buf)
	return err == nil
}

// udpProbe sends a datagram from netns: "echo" when it came back,
// "refused" when an ICMP port unreachable did, "" when nothing did.
func udpProbe(netns string, dst netip.Addr, port int) string {
	var c net.Conn
	if err := testbed.InNetns(netns, func() (err error) {
		c, err = net.Dial("udp4", netip.AddrPortFrom(dst, uint16(port)).String())
		return err
	}); err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeWait))
	if _, err := c.Write([]byte("x")); err != nil {
		return "write: " + err.Error()
	}
	_, err := c.Read(make([]byte, 16))
	switch {
	case err == nil:
		return "echo"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return ""
}

// stream writes to a TCP echo without end and counts what comes back.
type stream struct {
	received  atomic.Int64
	stalledAt time.Time
}

func startStream(t *testing.T, netns string, dst netip.Addr, port int) *stream {
	t.Helper()
	var c net.Conn
	if err := testbed.InNetns(netns, func() (err error) {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(dst, uint16(port)).String(), probeWait)
		return err
	}); err != nil {
		t.Fatalf("stream to %s: %v", dst, err)
	}
	t.Cleanup(func() { c.Close() })
	s := &stream{}
	go func() {
		chunk := make([]byte, 1024)
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			s.received.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	return s
}

// flowing waits, up to limit, for the count to grow.
func (s *stream) flowing(limit time.Duration) bool {
	start := s.received.Load()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s.received.Load() > start {
			return true
		}
	}
	return false
}

// stalled waits, up to limit, for the count to stand still for a second,
// and notes when it last grew, since (when the wait began).
func (s *stream) stalled(since time.Time, limit time.Duration) bool {
	last, lastChange := s.received.Load(), since
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n := s.received.Load(); n != last {
			last, lastChange = n, time.Now()
		}
		if time.Since(lastChange) >= time.Second {
			s.stalledAt = lastChange
			return true
		}
	}
	return false
}

package testbed

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Probes of real traffic between network namespaces: echo services, and
// the TCP, UDP and ping probes that get an answer from them or not, each
// bounded. A namespace is a name under /var/run/netns or a path (Ping:
// a name).

// ServeEcho runs TCP echo services on the tcp ports and UDP echo services
// on the udp ports of addr (0.0.0.0 for every address), in namespace ns,
// until the test ends.
func ServeEcho(tb testing.TB, ns string, addr netip.Addr, tcp, udp []uint16) {
	tb.Helper()
	for _, port := range tcp {
		ln := Listen(tb, ns, netip.AddrPortFrom(addr, port))
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_, _ = io.Copy(c, c)
				}()
			}
		}()
	}
	for _, port := range udp {
		at := netip.AddrPortFrom(addr, port)
		var pc net.PacketConn
		if err := InNetns(ns, func() (err error) {
			pc, err = net.ListenPacket("udp4", at.String())
			return err
		}); err != nil {
			tb.Fatalf("listen on %s/udp in %s: %v", at, ns, err)
		}
		tb.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
	}
}

// Listen listens on TCP at in namespace ns until the test ends.
func Listen(tb testing.TB, ns string, at netip.AddrPort) net.Listener {
	tb.Helper()
	var ln net.Listener
	if err := InNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp4", at.String())
		return err
	}); err != nil {
		tb.Fatalf("listen on %s in %s: %v", at, ns, err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// Connect opens a TCP connection from namespace ns to to, waiting at most
// wait for the handshake.
func Connect(ns string, to netip.AddrPort, wait time.Duration) (net.Conn, error) {
	var c net.Conn
	err := InNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", to.String(), wait)
		return err
	})
	return c, err
}

// Echo sends a byte on c and waits, at most wait, for it to come back.
func Echo(c net.Conn, wait time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte{42}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil {
		return err
	}
	if b[0] != 42 {
		return fmt.Errorf("echoed %d, sent 42", b[0])
	}
	return nil
}

// TCPEcho connects from namespace ns to a TCP echo service at to, waiting
// at most connect, and has one byte echoed, waiting at most echo: the
// handshake and data both ways.
func TCPEcho(ns string, to netip.AddrPort, connect, echo time.Duration) error {
	c, err := Connect(ns, to, connect)
	if err != nil {
		return err
	}
	defer c.Close()
	return Echo(c, echo)
}

// UDPEcho sends a datagram from namespace ns to to and waits, at most
// wait, for it to come back; an ICMP port unreachable in answer shows as
// syscall.ECONNREFUSED.
func UDPEcho(ns string, to netip.AddrPort, wait time.Duration) error {
	var c net.Conn
	if err := InNetns(ns, func() (err error) {
		c, err = net.Dial("udp4", to.String())
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	return Echo(c, wait)
}

// Ping sends one echo request from namespace ns to to and waits, at most
// wait (whole seconds, at least one), for the reply.
func Ping(ns string, to netip.Addr, wait time.Duration) error {
	secs := strconv.Itoa(max(1, int(wait/time.Second)))
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", secs, to.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s: %v: %s", to, err, out)
	}
	return nil
}

package testbed

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"
)

// TransferTCP sends n bytes from a socket in network namespace nsFrom to a
// listener on toIP in nsTo, checks that every byte arrived, and returns the
// rate in Mbit/s. The namespaces are names under /var/run/netns or paths.
func TransferTCP(t testing.TB, nsFrom, nsTo, toIP string, n int) float64 {
	t.Helper()
	var ln net.Listener
	if err := InNetns(nsTo, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(toIP, "0"))
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", nsTo, err)
	}
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		m, err := io.Copy(h, c)
		r := result{n: m, err: err}
		copy(r.sum[:], h.Sum(nil))
		got <- r
	}()
	payload := bytes.Repeat([]byte("ovs-vnet"), n/8)
	var conn net.Conn
	if err := InNetns(nsFrom, func() (err error) {
		conn, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial from %s: %v", nsFrom, err)
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	_, werr := conn.Write(payload)
	conn.Close()
	r := <-got
	if werr != nil || r.err != nil || r.n != int64(len(payload)) || r.sum != sha256.Sum256(payload) {
		t.Fatalf("TCP %s → %s: send err %v; received %d of %d bytes, err %v, checksum ok %v",
			nsFrom, nsTo, werr, r.n, len(payload), r.err, r.sum == sha256.Sum256(payload))
	}
	took := time.Since(start)
	rate := float64(len(payload)) * 8 / took.Seconds() / 1e6
	t.Logf("TCP %d MiB %s → %s in %v (%.0f Mbit/s)", len(payload)>>20, nsFrom, nsTo, took.Round(time.Millisecond), rate)
	return rate
}

package ofconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
)

// splitTarget parses an OVS-style target: "tcp:HOST:PORT", "ssl:HOST:PORT"
// or "unix:PATH". An ssl: target is TCP carrying TLS.
func splitTarget(target string) (network, addr string, secure bool, err error) {
	network, addr, ok := strings.Cut(target, ":")
	if !ok || addr == "" || (network != "tcp" && network != "unix" && network != "ssl") {
		return "", "", false, fmt.Errorf("openflow target %q: want tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH", target)
	}
	if network == "ssl" {
		return "tcp", addr, true, nil
	}
	return network, addr, false, nil
}

// IsTLS reports whether target is an ssl: target.
func IsTLS(target string) bool { return strings.HasPrefix(target, "ssl:") }

// Dial connects to a switch that listens, such as a bridge's
// unix:/run/openvswitch/BRIDGE.mgmt socket, and runs the handshake. An ssl:
// target wants DialTLS.
func Dial(ctx context.Context, target string, opts Options) (*Conn, error) {
	return DialTLS(ctx, target, nil, opts)
}

// DialTLS is Dial that speaks TLS with conf to an ssl: target; conf must be
// nil for the other kinds.
func DialTLS(ctx context.Context, target string, conf *tls.Config, opts Options) (*Conn, error) {
	network, addr, secure, err := splitTarget(target)
	if err != nil {
		return nil, err
	}
	if secure != (conf != nil) {
		return nil, fmt.Errorf("dial openflow %s: a TLS configuration goes with ssl: targets, and only with them", target)
	}
	var nc net.Conn
	if secure {
		nc, err = (&tls.Dialer{Config: conf}).DialContext(ctx, network, addr)
	} else {
		nc, err = (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial openflow %s: %w", target, err)
	}
	return New(ctx, nc, opts)
}

// Listen opens the controller's listener ("tcp:127.0.0.1:6653"); switches
// connect to it as set by `ovs-vsctl set-controller`. An ssl: target wants
// ListenTLS.
func Listen(target string) (net.Listener, error) {
	return ListenTLS(target, nil)
}

// ListenTLS is Listen for any target: an ssl: target serves TLS with conf
// (see TLSFiles.ServerConfig), the others want conf nil.
func ListenTLS(target string, conf *tls.Config) (net.Listener, error) {
	network, addr, secure, err := splitTarget(target)
	if err != nil {
		return nil, err
	}
	if secure != (conf != nil) {
		return nil, fmt.Errorf("listen for openflow on %s: a TLS configuration goes with ssl: targets, and only with them", target)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen for openflow on %s: %w", target, err)
	}
	if secure {
		ln = tls.NewListener(ln, conf)
	}
	return ln, nil
}

// Serve accepts switches on ln until ctx ends, runs each handshake (the TLS
// one first on a TLS listener), and hands every session to handle in a
// goroutine of its own. A failed handshake is logged and does not stop the
// server.
func Serve(ctx context.Context, ln net.Listener, opts Options, handle func(*Conn)) error {
	opts = opts.withDefaults()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept openflow connection: %w", err)
		}
		go func() {
			if tc, ok := nc.(*tls.Conn); ok {
				hctx, cancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
				err := tc.HandshakeContext(hctx)
				cancel()
				if err != nil {
					opts.Log.Warn("openflow switch rejected: TLS handshake", "peer", nc.RemoteAddr(), "err", err)
					nc.Close()
					return
				}
			}
			c, err := New(ctx, nc, opts)
			if err != nil {
				opts.Log.Warn("openflow switch rejected", "peer", nc.RemoteAddr(), "err", err)
				return
			}
			handle(c)
		}()
	}
}

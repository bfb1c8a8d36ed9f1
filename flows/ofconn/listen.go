package ofconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// splitTarget parses an OVS-style target: "tcp:HOST:PORT" or "unix:PATH".
func splitTarget(target string) (network, addr string, err error) {
	network, addr, ok := strings.Cut(target, ":")
	if !ok || addr == "" || (network != "tcp" && network != "unix") {
		return "", "", fmt.Errorf("openflow target %q: want tcp:HOST:PORT or unix:PATH", target)
	}
	return network, addr, nil
}

// Dial connects to a switch that listens, such as a bridge's
// unix:/run/openvswitch/BRIDGE.mgmt socket, and runs the handshake.
func Dial(ctx context.Context, target string, opts Options) (*Conn, error) {
	network, addr, err := splitTarget(target)
	if err != nil {
		return nil, err
	}
	nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial openflow %s: %w", target, err)
	}
	return New(ctx, nc, opts)
}

// Listen opens the controller's listener ("tcp:127.0.0.1:6653"); switches
// connect to it as set by `ovs-vsctl set-controller`.
func Listen(target string) (net.Listener, error) {
	network, addr, err := splitTarget(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen for openflow on %s: %w", target, err)
	}
	return ln, nil
}

// Serve accepts switches on ln until ctx ends, runs each handshake, and
// hands every session to handle in a goroutine of its own. A failed
// handshake is logged and does not stop the server.
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
			c, err := New(ctx, nc, opts)
			if err != nil {
				opts.Log.Warn("openflow switch rejected", "peer", nc.RemoteAddr(), "err", err)
				return
			}
			handle(c)
		}()
	}
}

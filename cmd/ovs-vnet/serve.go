package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/ovs-vnet/ovs-vnet/httpapi"
)

// serverTimeouts bound what one client can hold of the server: the time to
// send the header and the whole request, to take the answer, and to idle
// between requests. Each connection has its own deadlines, so a slow or
// stuck client holds only its own connection.
type serverTimeouts struct {
	readHeader, read, write, idle time.Duration
}

var defaultTimeouts = serverTimeouts{
	readHeader: 5 * time.Second,
	read:       30 * time.Second,
	// A PUT may wait on the datapath for up to the request timeout (60 s)
	// and, when that fails on a stalled switch, on its rollback for up to
	// 30 s more (controller/controller.go, rollbackTimeout): its answer
	// must still reach the client.
	write: 2 * time.Minute,
	idle:  2 * time.Minute,
}

// maxHeaderBytes bounds a request's header; bodies are bounded by the handler.
const maxHeaderBytes = 64 << 10

func newServer(h http.Handler, log *slog.Logger, to serverTimeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: to.readHeader,
		ReadTimeout:       to.read,
		WriteTimeout:      to.write,
		IdleTimeout:       to.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// guardHosts puts the Host and Origin check (httpapi.GuardHosts) before
// h on a TCP listener without a token: that is the one a web page can reach
// by DNS rebinding. A token already stops such a page (it cannot learn it,
// nor make the browser send it), and no browser connects to a unix socket;
// clients there send whatever host their URL names ("ovs-vnet" for our own
// client, "localhost" for curl --unix-socket), so the check would only
// refuse them.
func guardHosts(c config, h http.Handler, token string) http.Handler {
	if token != "" || c.unixSocket() != "" {
		return h
	}
	return httpapi.GuardHosts(h, c.allowedHostList())
}

// listenAPI opens --listen: HOST:PORT, or unix:PATH as a socket of mode 0660
// (a socket file left by an earlier run is replaced; any other file, or a
// socket someone still serves on, is refused). It returns the API's URL for
// the log.
func listenAPI(c config) (net.Listener, string, error) {
	scheme := "http"
	if c.tlsCert != "" {
		scheme = "https"
	}
	path := c.unixSocket()
	if path == "" {
		ln, err := net.Listen("tcp", c.listen)
		if err != nil {
			return nil, "", fmt.Errorf("listen: %w", err)
		}
		return ln, scheme + "://" + ln.Addr().String(), nil
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, "", fmt.Errorf("listen %s: %w", c.listen, err)
	}
	// Born without access for others, then opened to the group: there is no
	// moment at which a user outside the group could connect. Nothing else
	// creates files while the daemon starts, so the process-wide umask is safe.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, "", fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, "", fmt.Errorf("listen %s: %w", c.listen, err)
	}
	return ln, scheme + "+unix://" + path, nil
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket: refusing to replace it", path)
	}
	if nc, err := net.DialTimeout("unix", path, time.Second); err == nil {
		nc.Close()
		return fmt.Errorf("%s is in use: another process serves on it", path)
	}
	return os.Remove(path)
}

// serveAPI serves srv on ln, over TLS when the config names a key pair. The
// pair is loaded before the first connection, so a bad file stops the start.
func serveAPI(c config, srv *http.Server, ln net.Listener) (func() error, error) {
	if c.tlsCert == "" {
		return func() error { return srv.Serve(ln) }, nil
	}
	pair, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	return func() error { return srv.ServeTLS(ln, "", "") }, nil
}

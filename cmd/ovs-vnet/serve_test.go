package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testpki"
)

func TestFlagRules(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, c := range []struct {
		args []string
		err  string
	}{
		{nil, ""},
		{[]string{"--tls-cert", "c.pem"}, "give both or neither"},
		{[]string{"--tls-key", "k.pem"}, "give both or neither"},
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, ""},
		{[]string{"--openflow-listen", "ssl:127.0.0.1:6653"}, "needs --openflow-cert"},
		{[]string{"--openflow-listen", "ssl:127.0.0.1:6653", "--openflow-cert", "c", "--openflow-key", "k"}, "needs --openflow-cert"},
		{[]string{"--openflow-cert", "c", "--openflow-key", "k", "--openflow-ca", "a"}, "are for an ssl:"},
		{[]string{"--openflow-listen", "ssl:0.0.0.0:6653", "--openflow-cert", "c", "--openflow-key", "k", "--openflow-ca", "a"}, ""},
		{[]string{"--openflow-listen", "tcp:0.0.0.0:6653"}, "not a loopback address"},
		{[]string{"--openflow-listen", "tcp:[::1]:6653"}, ""},
		{[]string{"--openflow-listen", "unix:/run/ovs-vnet/of.sock"}, ""},
	} {
		cfg, err := parseFlags(c.args, noEnv, io.Discard)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%v: %v, want %q", c.args, err, c.err)
		}
		if err == nil && cfg.openflowCert != "" && !filepath.IsAbs(cfg.openflowCert) {
			t.Errorf("%v: OpenFlow TLS files stay relative: %q", c.args, cfg.openflowCert)
		}
	}
	if tok, err := (config{listen: "unix:/run/ovs-vnet/api.sock"}).token(); err != nil || tok != "" {
		t.Errorf("a unix socket without a token: %q, %v", tok, err)
	}
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
}

func startServer(t *testing.T, cfg config, to serverTimeouts) (net.Listener, string) {
	t.Helper()
	ln, url, err := listenAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(okHandler(), slog.New(slog.DiscardHandler), to)
	serve, err := serveAPI(cfg, srv, ln)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	go func() { _ = serve() }()
	t.Cleanup(func() { srv.Close() })
	return ln, url
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")

	// A socket file left behind by a run that died is replaced.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	_, url := startServer(t, config{listen: "unix:" + sock}, defaultTimeouts)
	if url != "http+unix://"+sock {
		t.Errorf("url %s", url)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want a socket of 0660", fi.Mode())
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Get("http://ovs-vnet/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("over the socket: %d %s", resp.StatusCode, body)
	}

	// A socket someone serves on, and a file that is no socket, are refused.
	if _, _, err := listenAPI(config{listen: "unix:" + sock}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("live socket: %v", err)
	}
	plain := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(plain, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := listenAPI(config{listen: "unix:" + plain}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep me" {
		t.Errorf("the regular file was touched")
	}
}

func TestHTTPS(t *testing.T) {
	ca := testpki.NewCA(t, "api")
	leaf := ca.Issue(t, "ovs-vnet")
	ln, url := startServer(t, config{listen: "127.0.0.1:0", tlsCert: leaf.CertFile, tlsKey: leaf.KeyFile}, defaultTimeouts)
	if !strings.HasPrefix(url, "https://") {
		t.Errorf("url %s", url)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP served on the TLS listener")
	}
	bad := config{listen: "127.0.0.1:0", tlsCert: leaf.KeyFile, tlsKey: leaf.CertFile}
	if _, err := serveAPI(bad, newServer(okHandler(), slog.New(slog.DiscardHandler), defaultTimeouts), nil); err == nil {
		t.Fatal("a swapped key pair accepted")
	}
}

// TestSlowClients: clients that trickle a header or never send their body
// hold only their own connection, and are cut off by the timeouts, while
// another client is answered promptly throughout.
func TestSlowClients(t *testing.T) {
	to := serverTimeouts{readHeader: 400 * time.Millisecond, read: 800 * time.Millisecond, write: 2 * time.Second, idle: 2 * time.Second}
	ln, _ := startServer(t, config{listen: "127.0.0.1:0"}, to)
	addr := ln.Addr().String()

	// cutOff returns how long the server took to close a connection
	// that sent prefix and then trickled (or, with trickle false, went quiet).
	cutOff := func(prefix string, trickle bool) (time.Duration, string) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer nc.Close()
		start := time.Now()
		if _, err := io.WriteString(nc, prefix); err != nil {
			t.Error(err)
		}
		stop := make(chan struct{})
		if trickle {
			go func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					if _, err := io.WriteString(nc, "X-Slow: "+strings.Repeat("a", i%5)+"\r\n"); err != nil {
						return
					}
				}
			}()
		}
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		answer, _ := io.ReadAll(bufio.NewReader(nc))
		close(stop)
		return time.Since(start), string(answer)
	}

	var wg sync.WaitGroup
	var headerTook, bodyTook time.Duration
	var bodyAnswer string
	wg.Add(2)
	go func() {
		defer wg.Done()
		headerTook, _ = cutOff("GET /healthz HTTP/1.1\r\nHost: x\r\n", true)
	}()
	go func() {
		defer wg.Done()
		bodyTook, bodyAnswer = cutOff("PUT /v1/networks/blue HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", false)
	}()

	// Meanwhile a well-behaved client is answered at once, again and again.
	deadline := time.Now().Add(time.Second)
	var worst time.Duration
	for n := 0; time.Now().Before(deadline); n++ {
		start := time.Now()
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		worst = max(worst, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
	if worst > 200*time.Millisecond {
		t.Errorf("a prompt client waited %v behind slow ones", worst)
	}
	wg.Wait()
	// The server's clock starts when it accepts, a little before the
	// client's, so a cut may come a little early by the client's clock.
	early := func(d time.Duration) time.Duration { return d - d/10 }
	if headerTook < early(to.readHeader) || headerTook > to.readHeader+time.Second {
		t.Errorf("trickled header cut off after %v, want about %v", headerTook, to.readHeader)
	}
	if bodyTook < early(to.read) || bodyTook > to.read+time.Second {
		t.Errorf("missing body cut off after %v, want about %v", bodyTook, to.read)
	}
	if strings.Contains(bodyAnswer, "200 OK") {
		t.Errorf("a request whose body never came was answered: %q", bodyAnswer)
	}
	t.Logf("prompt client worst %v; trickled header cut at %v; missing body cut at %v", worst, headerTook, bodyTook)
}

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/internal/testpki"
)

// TestSecurityRefusesToStart: the real binary, given an unsafe or incomplete
// configuration, exits non-zero at once with a message that says why, and
// never serves.
func TestSecurityRefusesToStart(t *testing.T) {
	hostNS := newNetns(t, "vnt-sec-")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"non-loopback API without token", []string{"--listen", "0.0.0.0:9476"}, "refusing to serve without --token-file"},
		{"all-interfaces API without token", []string{"--listen", ":9476"}, "refusing to serve without --token-file"},
		{"TLS cert without key", []string{"--tls-cert", "/nonexistent.pem"}, "--tls-cert and --tls-key go together"},
		{"non-loopback plain OpenFlow", []string{"--openflow-listen", "tcp:0.0.0.0:6653"}, "not a loopback address"},
		{"ssl OpenFlow without files", []string{"--openflow-listen", "ssl:127.0.0.1:6653"}, "needs --openflow-cert"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"netns", "exec", hostNS, daemonBin, "--state-dir", t.TempDir()}, c.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "ip", args...)
			out, err := cmd.CombinedOutput()
			testbed.CheckRace(t, "daemon", string(out), cmd.ProcessState)
			var exit *exec.ExitError
			if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("%v: want a non-zero exit, got %v: %s", c.args, err, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("%v: message %q does not say %q", c.args, out, c.want)
			}
		})
	}
}

// TestSecurityTokenAndTLS: with --token-file and --tls-cert/--tls-key on a
// non-loopback address the API answers HTTPS only; every endpoint but the
// probes wants the bearer token, and a missing or wrong one gets 401 with a
// JSON error and a Bearer challenge.
func TestSecurityTokenAndTLS(t *testing.T) {
	hostNS := newNetns(t, "vnt-sec-")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("e2e-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testpki.NewCA(t, "api")
	leaf := ca.Issue(t, "ovs-vnet")
	d := &daemon{t: t, hostNS: hostNS, stateDir: t.TempDir(), base: "https://127.0.0.1:9476",
		args: []string{"--backend", "linux", "--bridge", "vnbr", "--listen", "0.0.0.0:9476",
			"--token-file", tokenFile, "--tls-cert", leaf.CertFile, "--tls-key", leaf.KeyFile}}
	d.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     dialInNetns("/var/run/netns/" + hostNS),
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true,
	}}
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	d.start() // /readyz answers without a token

	get := func(path, auth string) (*http.Response, map[string]string) {
		req, _ := http.NewRequest("GET", d.base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := d.client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	for _, path := range []string{"/v1/info", "/v1/networks", "/v1/ports", "/v1/routers", "/metrics"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer e2e-s3cre", "Basic e2e-s3cret"} {
			resp, body := get(path, auth)
			if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || body["error"] == "" {
				t.Errorf("GET %s with %q: %d, challenge %q, body %v; want 401, Bearer, a JSON error",
					path, auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
			}
		}
		if resp, _ := get(path, "Bearer e2e-s3cret"); resp.StatusCode != 200 {
			t.Errorf("GET %s with the token: %d", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, _ := get(path, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s without a token: %d", path, resp.StatusCode)
		}
	}
	// A refused PUT changed nothing.
	req, _ := http.NewRequest("PUT", d.base+"/v1/networks/blue", strings.NewReader(`{"subnet":"10.81.0.0/24"}`))
	if resp, err := d.client.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("PUT without token: %v %v", resp, err)
	}
	if resp, _ := get("/v1/networks/blue", "Bearer e2e-s3cret"); resp.StatusCode != 404 {
		t.Errorf("the refused PUT created the network: GET %d", resp.StatusCode)
	}
	// Plain HTTP on the TLS port is not served.
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dialInNetns("/var/run/netns/" + hostNS)}}
	if resp, err := plain.Get("http://127.0.0.1:9476/healthz"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP answered on the HTTPS listener")
	}
}

// TestSecurityUnixSocket: --listen unix:PATH serves the API on a socket of
// mode 0660 without a token; a client that trickles its header is cut off by
// the header timeout while another is answered promptly.
func TestSecurityUnixSocket(t *testing.T) {
	hostNS := newNetns(t, "vnt-sec-")
	sock := filepath.Join(t.TempDir(), "api.sock")
	dialSock := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}
	d := &daemon{t: t, hostNS: hostNS, stateDir: t.TempDir(), base: "http://ovs-vnet",
		args:   []string{"--backend", "linux", "--bridge", "vnbr", "--listen", "unix:" + sock},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialSock, DisableKeepAlives: true}}}
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	d.start()
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("API socket %v, want a socket of mode 0660", fi.Mode())
	}
	d.must("PUT", "/v1/networks/blue", `{"subnet":"10.82.0.0/24"}`, 201, nil)
	d.must("GET", "/v1/networks/blue", nil, 200, nil)

	// A slow client: it sends a header line every 200 ms and never ends it.
	slow, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	cut := make(chan time.Duration, 1)
	go func() {
		_, _ = io.WriteString(slow, "GET /v1/networks HTTP/1.1\r\nHost: x\r\n")
		go func() {
			for range 100 {
				time.Sleep(200 * time.Millisecond)
				if _, err := io.WriteString(slow, "X-Slow: 1\r\n"); err != nil {
					return
				}
			}
		}()
		_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.ReadAll(slow)
		cut <- time.Since(start)
	}()
	var worst time.Duration
	for time.Since(start) < 3*time.Second {
		t0 := time.Now()
		d.must("GET", "/v1/networks", nil, 200, nil)
		worst = max(worst, time.Since(t0))
		time.Sleep(50 * time.Millisecond)
	}
	if worst > time.Second {
		t.Errorf("a prompt client waited %v while a slow one trickled", worst)
	}
	took := <-cut
	if took < 4*time.Second || took > 8*time.Second {
		t.Errorf("trickling client cut off after %v, want about the 5 s header timeout", took)
	}
	t.Logf("prompt client worst %v; trickling client cut off after %v", worst, took)
	d.stop()
	if _, err := os.Lstat(sock); err == nil {
		t.Error("the socket outlived the daemon")
	}
}

// TestSecurityOpenFlowTLS: with --openflow-listen ssl: the daemon gives OVS
// its TLS identity (the SSL row), sets the bridge's controller to the ssl:
// target, and the bridge connects over mutual TLS.
func TestSecurityOpenFlowTLS(t *testing.T) {
	hostNS := newNetns(t, "vnt-sec-")
	box := testbed.StartSandbox(t, repoRoot, hostNS)
	ca := testpki.NewCA(t, "openflow")
	leaf := ca.Issue(t, "ovs-vnet")
	target := "ssl:127.0.0.1:6653"
	d := startDaemon(t, hostNS, "--backend", "ovs", "--ovsdb", "unix:"+box.DBSock, "--bridge", "br-vnet",
		"--openflow-listen", target, "--openflow-cert", leaf.CertFile, "--openflow-key", leaf.KeyFile, "--openflow-ca", ca.CertFile)
	var info map[string]any
	d.must("GET", "/v1/info", nil, 200, &info)
	if info["openflow_connected"] != true {
		t.Fatalf("info %v", info)
	}
	if got := strings.TrimSpace(box.Vsctl(t, "get-controller", "br-vnet")); got != target {
		t.Errorf("controller %q, want %q", got, target)
	}
	ssl := box.Vsctl(t, "get-ssl")
	for _, f := range []string{leaf.KeyFile, leaf.CertFile, ca.CertFile} {
		if !strings.Contains(ssl, f) {
			t.Errorf("OVS SSL settings lack %s:\n%s", f, ssl)
		}
	}
	// ovs-vswitchd writes the Controller status every few seconds.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := strings.TrimSpace(box.Vsctl(t, "--columns=is_connected", "--bare", "list", "Controller"))
		if got == "true" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller is_connected %q", got)
		}
	}
	// The flows went over the TLS session: a network's flows are on the bridge.
	d.must("PUT", "/v1/networks/blue", `{"subnet":"10.83.0.0/24"}`, 201, nil)
	nsA := newNetns(t, "vnt-a-")
	d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": nsA}, 201, nil)
	if flows := box.Ofctl(t, "dump-flows", "br-vnet"); !strings.Contains(flows, "cookie=0x76") {
		t.Errorf("no flows of ours on the bridge:\n%s", flows)
	}
}

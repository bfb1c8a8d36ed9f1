package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{"OVS_VNET_BRIDGE": "br-env", "OVS_VNET_DATAPATH_TYPE": "netdev", "OVS_VNET_LISTEN": "127.0.0.1:1"}
	c, err := parseFlags([]string{"--listen", "127.0.0.1:2"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.bridge != "br-env" || c.datapathType != "netdev" || c.listen != "127.0.0.1:2" || c.backend != "auto" {
		t.Fatalf("flags win over env, env over defaults: %+v", c)
	}
	if _, err := parseFlags([]string{"extra"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatal("stray argument accepted")
	}
	// Typed flags, the OpenFlow TLS files that only go with an ssl: target,
	// --allowed-hosts that goes with no token (TestAllowedHostsFlag), and the
	// cluster's flags (TestClusterFlags).
	typed := map[string]bool{"OVS_VNET_PORT_METRICS": true, "OVS_VNET_SCRAPE_TIMEOUT": true, "OVS_VNET_SPARE_PORTS": true, "OVS_VNET_RESET_DATAPLANE": true,
		"OVS_VNET_NETNS_GRACE": true, "OVS_VNET_OPENFLOW_CERT": true, "OVS_VNET_OPENFLOW_KEY": true, "OVS_VNET_OPENFLOW_CA": true, "OVS_VNET_ALLOWED_HOSTS": true}
	for _, f := range []string{"ETCD_ENDPOINTS", "ETCD_PREFIX", "ETCD_CERT", "ETCD_KEY", "ETCD_CA", "HOST_NAME", "UNDERLAY_IP", "TUNNEL", "HOST_LEASE"} {
		typed["OVS_VNET_"+f] = true
	}
	if _, err := parseFlags(nil, func(k string) string {
		if typed[k] {
			return ""
		}
		return "x"
	}, io.Discard); err != nil {
		t.Fatalf("string flags take any env value: %v", err)
	}
	env = map[string]string{"OVS_VNET_PORT_METRICS": "false", "OVS_VNET_SCRAPE_TIMEOUT": "2s", "OVS_VNET_RESET_DATAPLANE": "true"}
	if c, err = parseFlags(nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.portMetrics || c.scrapeTimeout.Seconds() != 2 || !c.resetDataplane {
		t.Fatalf("typed flags from env: %+v, %v", c, err)
	}
	env = map[string]string{"OVS_VNET_PORT_METRICS": "maybe"}
	if _, err := parseFlags(nil, func(k string) string { return env[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), "OVS_VNET_PORT_METRICS") {
		t.Fatalf("a bad typed env value: %v", err)
	}
}

// TestNetnsGraceFlag: a minute by default, 0 turns the release off, a
// negative grace is refused.
func TestNetnsGraceFlag(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, c := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{nil, time.Minute, ""},
		{[]string{"--netns-grace", "0"}, 0, ""},
		{[]string{"--netns-grace", "3s"}, 3 * time.Second, ""},
		{[]string{"--netns-grace", "-1s"}, 0, "--netns-grace -1s: want 0 (never) or more"},
	} {
		got, err := parseFlags(c.args, noEnv, io.Discard)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || got.netnsGrace != c.want {
			t.Errorf("%v: %s, %v; want %s", c.args, got.netnsGrace, err, c.want)
		}
	}
}

func TestClusterFlags(t *testing.T) {
	cluster := []string{"--etcd-endpoints", "http://10.0.0.1:2379, http://10.0.0.2:2379", "--underlay-ip", "192.168.1.5", "--host-name", "node-1"}
	for _, c := range []struct {
		name    string
		args    []string
		wantErr string // "" = valid
	}{
		{"single host", nil, ""},
		{"cluster", cluster, ""},
		{"geneve", append(cluster, "--tunnel", "geneve"), ""},
		{"underlay without etcd", []string{"--underlay-ip", "192.168.1.5"}, "give --etcd-endpoints"},
		{"no underlay", []string{"--etcd-endpoints", "http://10.0.0.1:2379"}, "--underlay-ip"},
		{"underlay v6", append(cluster, "--underlay-ip", "fd00::1"), "unicast IPv4"},
		{"underlay loopback", append(cluster, "--underlay-ip", "127.0.0.1"), "unicast IPv4"},
		{"tunnel", append(cluster, "--tunnel", "gre"), "vxlan or geneve"},
		{"cert without key", append(cluster, "--etcd-cert", "c.pem"), "go together"},
		{"lease too short", append(cluster, "--host-lease", "1s"), "2s to 1h"},
		{"prefix", append(cluster, "--etcd-prefix", "ovs/"), "--etcd-prefix"},
		{"endpoint scheme", append(cluster, "--etcd-endpoints", "10.0.0.1:2379"), "http:// or https://"},
		{"host name", append(cluster, "--host-name", "Node.example"), "--host-name"},
		{"any name for a single host", []string{"--host-name", "Node_1.example"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseFlags(c.args, func(string) string { return "" }, io.Discard)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("err %v, want one containing %q", err, c.wantErr)
			case c.name == "cluster" && strings.Join(cfg.cluster.endpoints(), " ") != "http://10.0.0.1:2379 http://10.0.0.2:2379":
				t.Fatalf("endpoints %q", cfg.cluster.endpoints())
			}
		})
	}
}

func TestTokenRules(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		listen, file, want, err string
	}{
		{"127.0.0.1:9476", "", "", ""},
		{"[::1]:9476", "", "", ""},
		{"localhost:9476", "", "", ""},
		{"0.0.0.0:9476", "", "", "refusing to serve without --token-file"},
		{"10.1.2.3:9476", "", "", "refusing to serve without --token-file"},
		{":9476", "", "", "refusing to serve without --token-file"},
		{"0.0.0.0:9476", tokenFile, "s3cret", ""},
		{"127.0.0.1:9476", empty, "", "is empty"},
		{"127.0.0.1:9476", filepath.Join(dir, "missing"), "", "read token"},
	} {
		tok, err := config{listen: c.listen, tokenFile: c.file}.token()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("listen %s file %q: err %v, want %q", c.listen, c.file, err, c.err)
			}
			continue
		}
		if err != nil || tok != c.want {
			t.Errorf("listen %s file %q: %q, %v", c.listen, c.file, tok, err)
		}
	}
}

// TestAllowedHostsFlag: --allowed-hosts (or OVS_VNET_ALLOWED_HOSTS) takes
// host names and addresses, with or without a port, for a TCP listener
// without a token only; the Host check guards exactly that listener.
func TestAllowedHostsFlag(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		env     string
		want    []string
		wantErr string
	}{
		{"none", nil, "", nil, ""},
		{"names", []string{"--allowed-hosts", "vnet.internal, Box.example.:9476,10.1.2.3,,[fd00::1]"}, "", []string{"vnet.internal", "Box.example.:9476", "10.1.2.3", "[fd00::1]"}, ""},
		{"env", nil, "vnet.internal", []string{"vnet.internal"}, ""},
		{"with token", []string{"--allowed-hosts", "vnet.internal", "--token-file", "/t"}, "", nil, "without --token-file"},
		{"on a unix socket", []string{"--allowed-hosts", "vnet.internal", "--listen", "unix:/run/a.sock"}, "", nil, "unix socket"},
		{"wildcard", []string{"--allowed-hosts", "*"}, "", nil, "not a host name"},
		{"url", []string{"--allowed-hosts", "http://vnet.internal"}, "", nil, "not a host name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseFlags(c.args, func(k string) string {
				if k == "OVS_VNET_ALLOWED_HOSTS" {
					return c.env
				}
				return ""
			}, io.Discard)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(cfg.allowedHostList(), c.want) {
				t.Fatalf("%q, %v; want %q", cfg.allowedHostList(), err, c.want)
			}
		})
	}
	// The guard stands before a TCP listener without a token, and only there.
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, c := range []struct {
		cfg   config
		token string
		want  int
	}{
		{config{listen: "127.0.0.1:9476"}, "", http.StatusForbidden},
		{config{listen: "127.0.0.1:9476", allowedHosts: "evil.example"}, "", http.StatusNoContent},
		{config{listen: "127.0.0.1:9476"}, "s3cret", http.StatusNoContent},
		{config{listen: "unix:/run/a.sock"}, "", http.StatusNoContent},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "http://evil.example:9476/v1/networks", nil)
		guardHosts(c.cfg, ok, c.token).ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%+v token %q: Host evil.example got %d, want %d", c.cfg, c.token, rec.Code, c.want)
		}
	}
}

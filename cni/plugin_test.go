package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// fakeDaemon serves h as the daemon's API and records each request as
// "METHOD PATH BODY".
type fakeDaemon struct {
	URL string
	mu  sync.Mutex
	log []string
}

func newFakeDaemon(t *testing.T, h http.HandlerFunc) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.log = append(f.log, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *fakeDaemon) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func daemonErr(w http.ResponseWriter, status int, msg string) {
	answer(w, status, map[string]string{"error": msg})
}

// unreachable is a server nobody listens on.
func unreachable(t *testing.T) string {
	return "unix:" + filepath.Join(t.TempDir(), "none.sock")
}

func netconf(server string, extra string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"test","type":"ovs-vnet-cni","network":"blue","server":%q%s}`, server, extra))
}

func fastPlugin(out io.Writer) *Plugin {
	p := New(out)
	p.Timeouts = Timeouts{Attach: 2 * time.Second, Detach: 2 * time.Second, Query: 2 * time.Second}
	return p
}

// selfNetns is a namespace path that exists for any test: our own.
const selfNetns = "/proc/self/ns/net"

// addNetns makes a namespace of the test's own in which eth0 holds the
// port's MAC and address, as the daemon would leave them, beside an uplink
// up0; its default route goes through via: eth0 (via the gateway, as the
// daemon sets it), up0 (as another plugin or an earlier network would
// have it) or, for "", nowhere. It returns the namespace's path.
func addNetns(t *testing.T, via string) string {
	t.Helper()
	ns := testbed.UniqueName("vnt-cniadd-")
	testbed.Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	cmds := [][]string{
		{"link", "add", "eth0", "address", "02:00:00:00:00:05", "type", "veth", "peer", "name", "up0"},
		{"addr", "add", "10.10.0.5/24", "dev", "eth0"},
		{"addr", "add", "192.0.2.2/24", "dev", "up0"},
		{"link", "set", "eth0", "up"},
		{"link", "set", "up0", "up"},
	}
	switch via {
	case "eth0":
		cmds = append(cmds, []string{"route", "add", "default", "via", "10.10.0.1", "dev", "eth0"})
	case "up0":
		cmds = append(cmds, []string{"route", "add", "default", "via", "192.0.2.1", "dev", "up0"})
	}
	for _, args := range cmds {
		testbed.Run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	return "/var/run/netns/" + ns
}

// TestAdd runs ADD against a fake daemon, in namespaces of the test's own
// as the daemon would leave them: the result lists the default route only
// where the port's interface holds it.
func TestAdd(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, to make and enter network namespaces")
	netnsPath, uplinkPath := addNetns(t, "eth0"), addNetns(t, "up0")
	name := PortName("c1", "eth0")
	port := v1.Port{Name: name, Network: "blue", Type: "veth", Netns: netnsPath, Ifname: "eth0",
		IP: "10.10.0.5/24", MAC: "02:00:00:00:00:05", Gateway: "10.10.0.1", HostIfname: "vnet0123456789"}
	created := func(w http.ResponseWriter, r *http.Request) { answer(w, 201, port) }
	for _, c := range []struct {
		name       string
		h          http.HandlerFunc
		server     string // default: the fake daemon
		extra      string // more configuration keys
		netns      string
		timeout    time.Duration
		wantCode   uint
		wantMsg    string
		wantReq    string // the one request expected, "" for none
		wantRoutes int    // in the result
	}{
		{name: "created", h: created, wantRoutes: 1,
			wantReq: `PUT /v1/ports/` + name + ` {"network":"blue","netns":"` + netnsPath + `","ifname":"eth0","type":"veth","release_with_netns":true}`},
		{name: "exists with the same spec", h: func(w http.ResponseWriter, r *http.Request) { answer(w, 200, port) }, wantRoutes: 1,
			wantReq: `PUT /v1/ports/` + name + ` {"network":"blue","netns":"` + netnsPath + `","ifname":"eth0","type":"veth","release_with_netns":true}`},
		{name: "static ip and mac", h: created, extra: `,"runtimeConfig":{"ips":["10.10.0.5/24"],"mac":"02:00:00:00:00:05"}`, wantRoutes: 1,
			wantReq: `PUT /v1/ports/` + name + ` {"network":"blue","netns":"` + netnsPath + `","ifname":"eth0","ip":"10.10.0.5","mac":"02:00:00:00:00:05","type":"veth","release_with_netns":true}`},
		{name: "security groups", h: created, extra: `,"security_groups":["web","ssh"]`, wantRoutes: 1,
			wantReq: `PUT /v1/ports/` + name + ` {"network":"blue","netns":"` + netnsPath + `","ifname":"eth0","type":"veth","release_with_netns":true,"security_groups":["web","ssh"]}`},
		{name: "unknown security group", h: func(w http.ResponseWriter, r *http.Request) {
			daemonErr(w, 404, `not found: create port "x": security group "web"`)
		}, extra: `,"security_groups":["web"]`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: `security group "web"`, wantReq: "PUT"},
		{name: "groups not enforced", h: func(w http.ResponseWriter, r *http.Request) {
			daemonErr(w, 501, "not supported: the linux backend does not enforce security groups")
		}, extra: `,"security_groups":["web"]`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "does not enforce", wantReq: "PUT"},
		{name: "unclean netns path", h: created, netns: strings.Replace(netnsPath, "/netns/", "/netns/../netns/", 1), wantRoutes: 1,
			wantReq: `PUT /v1/ports/` + name + ` {"network":"blue","netns":"` + netnsPath + `","ifname":"eth0","type":"veth","release_with_netns":true}`},
		{name: "secondary", h: created, extra: `,"default_route":false`, netns: uplinkPath, wantRoutes: 0,
			wantReq: `PUT /v1/ports/` + name + ` {"network":"blue","netns":"` + uplinkPath + `","ifname":"eth0","type":"veth","default_route":false,"release_with_netns":true}`},
		{name: "default route elsewhere", h: created, netns: uplinkPath, wantRoutes: 0,
			wantReq: `PUT /v1/ports/` + name + ` {"network":"blue","netns":"` + uplinkPath + `","ifname":"eth0","type":"veth","release_with_netns":true}`},
		{name: "unknown network", h: func(w http.ResponseWriter, r *http.Request) { daemonErr(w, 404, `not found: network "blue"`) },
			wantCode: types.ErrInvalidNetworkConfig, wantMsg: `not found: attach port ` + name + ` (container c1, eth0) to network blue: network "blue" (HTTP 404)`, wantReq: "PUT"},
		{name: "address in use", h: func(w http.ResponseWriter, r *http.Request) { daemonErr(w, 409, "conflict: ip 10.10.0.5 is in use") },
			wantCode: types.ErrInvalidNetworkConfig, wantMsg: "conflict: attach port " + name + " (container c1, eth0) to network blue: ip 10.10.0.5 is in use", wantReq: "PUT"},
		{name: "port busy", h: func(w http.ResponseWriter, r *http.Request) {
			daemonErr(w, 409, `conflict: port "x" is being changed by another request`)
		}, wantCode: types.ErrTryAgainLater, wantMsg: "being changed", wantReq: "PUT"},
		{name: "not ready", h: func(w http.ResponseWriter, r *http.Request) { daemonErr(w, 503, "backend not ready: connecting") },
			wantCode: types.ErrTryAgainLater, wantMsg: "backend not ready", wantReq: "PUT"},
		{name: "datapath too slow", h: func(w http.ResponseWriter, r *http.Request) {
			daemonErr(w, 504, "datapath timeout: port x: context deadline exceeded")
		}, wantCode: types.ErrTryAgainLater, wantMsg: "datapath timeout", wantReq: "PUT"},
		{name: "wants a token", h: func(w http.ResponseWriter, r *http.Request) { daemonErr(w, 401, "unauthorized") },
			wantCode: types.ErrInvalidNetworkConfig, wantMsg: "unauthorized", wantReq: "PUT"},
		{name: "daemon fails", h: func(w http.ResponseWriter, r *http.Request) { daemonErr(w, 500, "internal error: ovsdb: boom") },
			wantCode: types.ErrInternal, wantMsg: "ovsdb: boom", wantReq: "PUT"},
		{name: "answer is not a port", h: func(w http.ResponseWriter, r *http.Request) { answer(w, 201, map[string]string{"ip": "x"}) },
			wantCode: types.ErrInternal, wantMsg: "not an IPv4 prefix", wantReq: "PUT"},
		{name: "daemon unreachable", server: "unreachable", wantCode: types.ErrTryAgainLater, wantMsg: "attach port"},
		{name: "daemon hangs", timeout: 200 * time.Millisecond, h: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			wantCode: types.ErrTryAgainLater, wantMsg: "deadline", wantReq: "PUT"},
		{name: "netns missing", h: created, netns: "/var/run/netns/vnt-does-not-exist", wantCode: types.ErrInvalidNetNS, wantMsg: "CNI_NETNS"},
		{name: "netns not a path", h: created, netns: "web1", wantCode: types.ErrInvalidNetNS, wantMsg: "not an absolute path"},
		{name: "netns not a namespace", h: created, netns: "/etc", wantCode: types.ErrInvalidNetNS, wantMsg: "CNI_NETNS"},
		{name: "two addresses", h: created, extra: `,"runtimeConfig":{"ips":["10.10.0.5/24","10.10.0.6/24"]}`,
			wantCode: types.ErrInvalidNetworkConfig, wantMsg: "one IPv4 address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeDaemon(t, c.h)
			server := f.URL
			if c.server == "unreachable" {
				server = unreachable(t)
			}
			var out bytes.Buffer
			p := fastPlugin(&out)
			if c.timeout != 0 {
				p.Timeouts.Attach = c.timeout
			}
			netns := netnsPath
			if c.netns != "" {
				netns = c.netns
			}
			err := p.Add(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: netns, StdinData: netconf(server, c.extra)})
			reqs := f.requests()
			switch {
			case c.wantReq == "" && len(reqs) != 0:
				t.Errorf("requests %q, want none", reqs)
			case c.wantReq != "" && (len(reqs) != 1 || !strings.HasPrefix(reqs[0], c.wantReq)):
				t.Errorf("requests %q, want one: %s", reqs, c.wantReq)
			}
			if c.wantCode != 0 {
				if cniCode(err) != c.wantCode || !strings.Contains(err.Error(), c.wantMsg) {
					t.Fatalf("err %v (code %d), want code %d containing %q", err, cniCode(err), c.wantCode, c.wantMsg)
				}
				if out.Len() != 0 {
					t.Errorf("a failed ADD printed %s", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res, err := current.NewResult(out.Bytes())
			if err != nil {
				t.Fatalf("result %s: %v", out.String(), err)
			}
			r := res.(*current.Result)
			if r.CNIVersion != "1.1.0" || len(r.Interfaces) != 2 || r.Interfaces[1].Sandbox != filepath.Clean(netns) ||
				len(r.IPs) != 1 || r.IPs[0].Address.String() != "10.10.0.5/24" || len(r.Routes) != c.wantRoutes {
				t.Fatalf("result %s", out.String())
			}
		})
	}
}

func TestAddSendsToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got string
	f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		daemonErr(w, 404, "not found")
	})
	err := fastPlugin(io.Discard).Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0",
		StdinData: netconf(f.URL, fmt.Sprintf(`,"token_file":%q`, tokenFile))})
	if err != nil || got != "Bearer s3cret" {
		t.Fatalf("err %v, Authorization %q", err, got)
	}
}

func TestDel(t *testing.T) {
	path := "/v1/ports/" + PortName("c1", "eth0")
	for _, c := range []struct {
		name     string
		h        http.HandlerFunc
		server   string
		netns    string
		wantCode uint
	}{
		{name: "deleted", h: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }},
		{name: "already gone", h: func(w http.ResponseWriter, r *http.Request) { daemonErr(w, 404, "not found: port") }},
		{name: "no netns", netns: "-", h: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }},
		{name: "netns deleted", netns: "/var/run/netns/vnt-gone", h: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }},
		{name: "busy", h: func(w http.ResponseWriter, r *http.Request) {
			daemonErr(w, 409, `conflict: port "x" is being changed by another request`)
		}, wantCode: types.ErrTryAgainLater},
		{name: "not ready", h: func(w http.ResponseWriter, r *http.Request) { daemonErr(w, 503, "backend not ready") },
			wantCode: types.ErrTryAgainLater},
		{name: "unreachable", server: "unreachable", wantCode: types.ErrTryAgainLater},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeDaemon(t, c.h)
			server := f.URL
			if c.server == "unreachable" {
				server = unreachable(t)
			}
			netns := selfNetns
			switch c.netns {
			case "-":
				netns = ""
			case "":
			default:
				netns = c.netns
			}
			err := fastPlugin(io.Discard).Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: netns, StdinData: netconf(server, "")})
			if cniCode(err) != c.wantCode || (c.wantCode == 0) != (err == nil) {
				t.Fatalf("err %v, want code %d", err, c.wantCode)
			}
			if reqs := f.requests(); c.server == "" && !slices.Equal(reqs, []string{"DELETE " + path}) {
				t.Fatalf("requests %q, want DELETE %s", reqs, path)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	for _, c := range []struct {
		name       string
		ready, net int
		server     string
		wantMsg    string // "" for success
	}{
		{name: "ready", ready: 200, net: 200},
		{name: "not ready", ready: 503, net: 200, wantMsg: "is not ready: backend not ready: reconciling"},
		{name: "no network", ready: 200, net: 404, wantMsg: "network blue"},
		{name: "unreachable", server: "unreachable", wantMsg: "is not ready"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/readyz":
					if c.ready != 200 {
						daemonErr(w, c.ready, "backend not ready: reconciling")
						return
					}
					answer(w, 200, map[string]string{"status": "ok"})
				case "/v1/networks/blue":
					if c.net != 200 {
						daemonErr(w, c.net, `not found: network "blue"`)
						return
					}
					answer(w, 200, v1.NetworkSpec{Subnet: "10.10.0.0/24"})
				default:
					daemonErr(w, 404, "unknown endpoint")
				}
			})
			server := f.URL
			if c.server == "unreachable" {
				server = unreachable(t)
			}
			err := fastPlugin(io.Discard).Status(&skel.CmdArgs{StdinData: netconf(server, "")})
			if c.wantMsg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if cniCode(err) != types.ErrPluginNotAvailable || !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("err %v, want code 50 containing %q", err, c.wantMsg)
			}
		})
	}
}

func TestGC(t *testing.T) {
	live, dead1, dead2 := PortName("live", "eth0"), PortName("dead1", "eth0"), PortName("dead2", "eth0")
	ports := []v1.Port{{Name: live, Network: "blue", Host: "h1"}, {Name: dead1, Network: "blue", Host: "h1"},
		{Name: "web1", Network: "blue", Host: "h1"}, {Name: dead2, Network: "blue", Host: "h1"},
		{Name: PortName("elsewhere", "eth0"), Network: "blue", Host: "h2"}}
	validLive := `,"cni.dev/valid-attachments":[{"containerID":"live","ifname":"eth0"}]`
	for _, c := range []struct {
		name        string
		extra       string
		listStatus  int
		failDelete  string // a port whose DELETE answers 500
		goneDelete  string // a port whose DELETE answers 404
		wantDeletes []string
		wantCode    uint
	}{
		{name: "one valid", extra: validLive, listStatus: 200, wantDeletes: []string{dead1, dead2}},
		{name: "none valid", listStatus: 200, wantDeletes: []string{live, dead1, dead2}},
		{name: "one already gone", extra: validLive, listStatus: 200, goneDelete: dead1, wantDeletes: []string{dead1, dead2}},
		{name: "one fails, the rest still go", extra: validLive, listStatus: 200, failDelete: dead1,
			wantDeletes: []string{dead1, dead2}, wantCode: types.ErrInternal},
		{name: "no such network", listStatus: 404},
		{name: "not ready", listStatus: 503, wantCode: types.ErrTryAgainLater},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == "GET" && r.URL.Path == "/v1/info":
					answer(w, 200, map[string]any{"host": "h1"})
				case r.Method == "GET" && r.URL.Path == "/v1/ports" && r.URL.Query().Get("network") == "blue":
					if c.listStatus != 200 {
						daemonErr(w, c.listStatus, "nope")
						return
					}
					answer(w, 200, map[string]any{"ports": ports})
				case r.Method == "DELETE" && r.URL.Path == "/v1/ports/"+c.failDelete:
					daemonErr(w, 500, "detach failed")
				case r.Method == "DELETE" && r.URL.Path == "/v1/ports/"+c.goneDelete:
					daemonErr(w, 404, "not found: port")
				case r.Method == "DELETE":
					w.WriteHeader(204)
				default:
					daemonErr(w, 400, "unexpected "+r.Method+" "+r.URL.String())
				}
			})
			err := fastPlugin(io.Discard).GC(&skel.CmdArgs{StdinData: netconf(f.URL, c.extra)})
			if cniCode(err) != c.wantCode || (c.wantCode == 0) != (err == nil) {
				t.Fatalf("err %v, want code %d", err, c.wantCode)
			}
			if c.failDelete != "" && !strings.Contains(err.Error(), c.failDelete+": detach failed") {
				t.Errorf("the error does not name the port that failed: %v", err)
			}
			var deletes []string
			for _, r := range f.requests() {
				if name, ok := strings.CutPrefix(r, "DELETE /v1/ports/"); ok {
					deletes = append(deletes, name)
				}
			}
			if !slices.Equal(deletes, c.wantDeletes) {
				t.Fatalf("deleted %v, want %v", deletes, c.wantDeletes)
			}
		})
	}
}

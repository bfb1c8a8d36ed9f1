package e2e

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/cni"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// cniCacheDir is where libcni (and so cnitool) keeps the results of ADD; it
// has no setting for another place. Each test names its CNI network uniquely
// and removes exactly its own files from there.
const cniCacheDir = "/var/lib/cni"

// cniBins are the plugin, in a directory of its own (CNI_PATH), and cnitool.
type cniBins struct {
	pluginDir string
	cnitool   string
}

// buildCNI builds the plugin with the race detector, as the daemon is, and
// cnitool, the runtime stand-in, from the module's own requirements.
func buildCNI(t *testing.T) cniBins {
	t.Helper()
	b := cniBins{pluginDir: t.TempDir(), cnitool: filepath.Join(t.TempDir(), "cnitool")}
	for _, args := range [][]string{
		{"build", "-race", "-o", filepath.Join(b.pluginDir, "ovs-vnet-cni"), "./cmd/ovs-vnet-cni"},
		{"build", "-o", b.cnitool, "github.com/containernetworking/cni/cnitool"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return b
}

// cniEnv is one CNI network configuration, as a runtime would have it in
// /etc/cni/net.d, and the means to run cnitool and the plugin with it.
type cniEnv struct {
	t       *testing.T // for the plugin's race reports
	bins    cniBins
	confDir string
	conf    map[string]any
	ifname  string // CNI_IFNAME for cnitool
	cniPath string // CNI_PATH for cnitool: the plugin, and any it chains
}

func newCNIEnv(t *testing.T, bins cniBins, server, tokenFile string) *cniEnv {
	t.Helper()
	return newCNIEnvOn(t, bins, server, tokenFile, "blue", "eth0")
}

// newCNIEnvOn is newCNIEnv for the daemon's network, attached as ifname: a
// second one gives the same containers a second network, as `podman run
// --network blue,red` does.
func newCNIEnvOn(t *testing.T, bins cniBins, server, tokenFile, network, ifname string) *cniEnv {
	t.Helper()
	e := &cniEnv{t: t, bins: bins, confDir: t.TempDir(), ifname: ifname, cniPath: bins.pluginDir, conf: map[string]any{
		"cniVersion": "1.1.0", "name": testbed.UniqueName("vnt-cni-"), "type": "ovs-vnet-cni",
		"network": network, "server": server,
	}}
	if tokenFile != "" {
		e.conf["token_file"] = tokenFile
	}
	e.write("10-ovs-vnet.conf")
	return e
}

// write puts e.conf into e.confDir as file, for cnitool to find by name.
func (e *cniEnv) write(file string) {
	e.t.Helper()
	raw, err := json.Marshal(e.conf)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.confDir, file), raw, 0o644); err != nil {
		e.t.Fatal(err)
	}
	cleanCNICache(e.t, e.name())
}

func (e *cniEnv) name() string { return e.conf["name"].(string) }

// cleanCNICache removes at cleanup the cache files of network name, and the
// cache directories if this test made them and they are empty.
func cleanCNICache(t *testing.T, name string) {
	results := filepath.Join(cniCacheDir, "results")
	var made []string
	for _, dir := range []string{cniCacheDir, results} {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			made = append(made, dir)
		}
	}
	t.Cleanup(func() {
		files, _ := filepath.Glob(filepath.Join(results, name+"-*"))
		for _, f := range files {
			_ = os.Remove(f)
		}
		for i := len(made) - 1; i >= 0; i-- {
			_ = os.Remove(made[i]) // fails, as it should, if anyone else put files there
		}
	})
}

// tool runs cnitool COMMAND NETWORK NETNS and returns its standard output.
func (e *cniEnv) tool(command, netns string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bins.cnitool, command, e.name(), netns)
	cmd.Env = append(cleanEnv(), "CNI_PATH="+e.cniPath, "NETCONFPATH="+e.confDir, "CNI_IFNAME="+e.ifname)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// The plugin (race-built) writes to cnitool's standard error.
	testbed.CheckRace(e.t, "ovs-vnet-cni (cnitool "+command+")", stderr.String(), nil)
	if err != nil {
		return stdout.String(), fmt.Errorf("cnitool %s %s: %v: %s%s", command, netns, err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// plugin runs the plugin by hand, for what cnitool cannot send (GC's valid
// attachments) and to read the CNI error code it prints on failure. e must
// be a single configuration (newCNIEnvOn), not a list.
func (e *cniEnv) plugin(t *testing.T, command string, extra map[string]any, env ...string) (out string, code uint) {
	t.Helper()
	conf := map[string]any{}
	for k, v := range e.conf {
		conf[k] = v
	}
	for k, v := range extra {
		conf[k] = v
	}
	stdin, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bins.pluginDir, "ovs-vnet-cni"))
	cmd.Env = append(append(cleanEnv(), "CNI_COMMAND="+command, "CNI_PATH="+e.bins.pluginDir), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	testbed.CheckRace(t, "ovs-vnet-cni "+command, stderr.String(), cmd.ProcessState)
	if err == nil {
		return string(raw), 0
	}
	var cniErr types.Error
	if jerr := json.Unmarshal(raw, &cniErr); jerr != nil || cniErr.Code == 0 {
		t.Fatalf("plugin %s: %v, and no CNI error on stdout: %s", command, err, raw)
	}
	return cniErr.Msg + "; " + cniErr.Details, cniErr.Code
}

// cleanEnv is the test's environment without CNI variables it may carry.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CNI_") && !strings.HasPrefix(kv, "CAP_ARGS=") && !strings.HasPrefix(kv, "NETCONFPATH=") {
			env = append(env, kv)
		}
	}
	return env
}

// cnitoolContainerID is the container id cnitool makes up for a netns path.
func cnitoolContainerID(netnsPath string) string {
	sum := sha512.Sum512([]byte(netnsPath))
	return fmt.Sprintf("cnitool-%x", sum[:10])
}

// startSocketDaemon starts the daemon in hostNS serving the API on a unix
// socket, which the plugin, run in the root namespace, reaches.
func startSocketDaemon(t *testing.T, hostNS, sock string, args ...string) *daemon {
	t.Helper()
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}
	d := &daemon{t: t, hostNS: hostNS, stateDir: t.TempDir(), base: "http://ovs-vnet",
		args:   append(args, "--listen", "unix:"+sock),
		client: &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}}
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	d.start()
	return d
}

// cniPort finds the daemon's port for a cnitool attachment and checks its
// name is the plugin's derivation from cnitool's container id and eth0.
func cniPort(t *testing.T, d *daemon, netnsPath string) portView {
	t.Helper()
	var p portView
	name := cni.PortName(cnitoolContainerID(netnsPath), "eth0")
	d.must("GET", "/v1/ports/"+name, nil, 200, &p)
	if p.Netns != netnsPath || p.Ifname != "eth0" || p.Network != "blue" || p.Type != "veth" {
		t.Fatalf("port %s: %+v", name, p)
	}
	return p
}

// checkCNIResult compares ADD's result, in CNI version version, with the
// daemon's port.
func checkCNIResult(t *testing.T, out, version string, p portView, netnsPath, gateway string) {
	t.Helper()
	parsed, err := current.NewResult([]byte(out))
	if err != nil {
		t.Fatalf("ADD result %q: %v", out, err)
	}
	r := parsed.(*current.Result)
	ok := r.CNIVersion == version && len(r.Interfaces) == 2 &&
		r.Interfaces[0].Name == p.HostIfname && r.Interfaces[0].Sandbox == "" &&
		r.Interfaces[1].Name == "eth0" && r.Interfaces[1].Mac == p.MAC && r.Interfaces[1].Sandbox == netnsPath &&
		len(r.IPs) == 1 && r.IPs[0].Interface != nil && *r.IPs[0].Interface == 1 &&
		r.IPs[0].Address.String() == p.IP && r.IPs[0].Gateway.String() == gateway &&
		len(r.Routes) == 1 && r.Routes[0].Dst.String() == "0.0.0.0/0" && r.Routes[0].GW.String() == gateway
	if !ok {
		t.Fatalf("ADD result does not describe port %+v:\n%s", p, out)
	}
}

func mustTool(t *testing.T, e *cniEnv, command, netns string) string {
	t.Helper()
	out, err := e.tool(command, netns)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCNI drives ovs-vnet-cni as a runtime does, through cnitool, against the
// real daemon on each backend: ADD, a ping between two containers, CHECK
// (and its failure once the interface is gone, and once the daemon finds
// the port down), DEL (repeated, and after the namespace went), STATUS and
// GC; then the bearer token.
func TestCNI(t *testing.T) {
	bins := buildCNI(t)
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) { runCNI(t, bins, bc) })
	}
	t.Run("token", func(t *testing.T) { runCNIToken(t, bins) })
}

func runCNI(t *testing.T, bins cniBins, bc backendCase) {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	sock := filepath.Join(t.TempDir(), "api.sock")
	d := startSocketDaemon(t, hostNS, sock, args...)
	d.must("PUT", "/v1/networks/blue", `{"subnet":"10.71.0.0/24"}`, 201, nil)
	d.must("PUT", "/v1/networks/red", `{"subnet":"10.72.0.0/24"}`, 201, nil)
	e := newCNIEnv(t, bins, sock, "")

	// ADD two containers; their results describe the daemon's ports, and
	// they reach each other at once.
	nsA, nsB := newNetns(t, "vnt-ca-"), newNetns(t, "vnt-cb-")
	pathA, pathB := "/var/run/netns/"+nsA, "/var/run/netns/"+nsB
	outA := mustTool(t, e, "add", pathA)
	outB := mustTool(t, e, "add", pathB)
	portA, portB := cniPort(t, d, pathA), cniPort(t, d, pathB)
	checkCNIResult(t, outA, "1.1.0", portA, pathA, "10.71.0.1")
	checkCNIResult(t, outB, "1.1.0", portB, pathB, "10.71.0.1")
	checkNamespaceEnd(t, nsA, "eth0", portA)
	ipA, ipB := strings.Split(portA.IP, "/")[0], strings.Split(portB.IP, "/")[0]
	ping(t, nsA, ipB, true)
	ping(t, nsB, ipA, true)
	// A repeated ADD finds the port as it is.
	if again := mustTool(t, e, "add", pathA); again != outA {
		t.Fatalf("second ADD answered\n%s\nthe first\n%s", again, outA)
	}

	// CHECK passes, then fails once the interface lost its address, saying
	// why. (A deleted interface the daemon makes again by itself:
	// e2e/drift_test.go.)
	mustTool(t, e, "check", pathA)
	mustTool(t, e, "check", pathB)
	testbed.Run(t, "ip", "-n", nsA, "addr", "flush", "dev", "eth0")
	if _, err := e.tool("check", pathA); err == nil || !strings.Contains(err.Error(), "interface eth0 lacks address "+portA.IP) {
		t.Fatalf("CHECK after the interface lost its address: %v", err)
	}

	// DEL, twice; and DEL after the namespace itself went, before which
	// CHECK answers with the daemon's status, the port down for a reason
	// the daemon does not repair by itself (no namespace to attach to).
	mustTool(t, e, "del", pathA)
	mustTool(t, e, "del", pathA)
	d.must("GET", "/v1/ports/"+portA.Name, nil, 404, nil)
	testbed.Run(t, "ip", "netns", "del", nsB)
	waitFor(t, "b down, netns_gone, once its namespace is deleted", func() bool {
		var p portView
		d.must("GET", "/v1/ports/"+portB.Name, nil, 200, &p)
		return p.Status == v1.PortDown && p.StatusReason == "netns_gone"
	})
	if _, err := e.tool("check", pathB); err == nil ||
		!strings.Contains(err.Error(), "check of port "+portB.Name+" failed: the port does not forward: netns_gone: ") {
		t.Fatalf("CHECK of a port the daemon has down: %v", err)
	}
	mustTool(t, e, "del", pathB)
	d.must("GET", "/v1/ports/"+portB.Name, nil, 404, nil)

	// STATUS: fine here, code 50 for a daemon nobody serves.
	mustTool(t, e, "status", pathA)
	gone := newCNIEnv(t, bins, filepath.Join(t.TempDir(), "none.sock"), "")
	if msg, code := gone.plugin(t, "STATUS", nil); code != types.ErrPluginNotAvailable || !strings.Contains(msg, "is not ready") {
		t.Fatalf("STATUS without a daemon: code %d, %s", code, msg)
	}

	runCNIGC(t, d, e)
	runCNITwoNetworks(t, d, bins, e, sock)
	runCNIDocs(t, d, bins, sock)

	d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
	d.must("DELETE", "/v1/networks/red", nil, 204, nil)
	d.stop()
	assertNothingLeft(t, hostNS, box, d.stateDir, nsA)
}

// runCNIGC: GC deletes the network's ports of the plugin's name form that no
// valid attachment derives, and never a port of another name or network.
func runCNIGC(t *testing.T, d *daemon, e *cniEnv) {
	nsC, nsX := newNetns(t, "vnt-cc-"), newNetns(t, "vnt-cx-")
	pathC := "/var/run/netns/" + nsC
	mustTool(t, e, "add", pathC)
	portC := cniPort(t, d, pathC)
	const leaked, otherNet = "cni-0123456789abcdef", "cni-fedcba9876543210"
	d.must("PUT", "/v1/ports/keep", map[string]string{"network": "blue", "netns": nsX, "ifname": "eth0"}, 201, nil)
	d.must("PUT", "/v1/ports/"+leaked, map[string]string{"network": "blue", "netns": nsX, "ifname": "eth1"}, 201, nil)
	d.must("PUT", "/v1/ports/"+otherNet, map[string]string{"network": "red", "netns": nsX, "ifname": "eth2"}, 201, nil)

	valid := []types.GCAttachment{{ContainerID: cnitoolContainerID(pathC), IfName: "eth0"}}
	if msg, code := e.plugin(t, "GC", map[string]any{"cni.dev/valid-attachments": valid}); code != 0 {
		t.Fatalf("GC: code %d, %s", code, msg)
	}
	d.must("GET", "/v1/ports/"+leaked, nil, 404, nil)
	for _, kept := range []string{portC.Name, "keep", otherNet} {
		d.must("GET", "/v1/ports/"+kept, nil, 200, nil)
	}
	ping(t, nsC, "10.71.0.1", true) // the valid attachment still forwards

	// cnitool's GC names no valid attachment: C's port goes too.
	mustTool(t, e, "gc", pathC)
	d.must("GET", "/v1/ports/"+portC.Name, nil, 404, nil)
	for _, kept := range []string{"keep", otherNet} {
		d.must("GET", "/v1/ports/"+kept, nil, 200, nil)
		d.must("DELETE", "/v1/ports/"+kept, nil, 204, nil)
	}
}

// runCNITwoNetworks: a container with two networks (blue as eth0, then red
// as eth1). The first ADD's result lists the default route and its
// interface holds it; the second's lists none and the namespace keeps the
// first's (docs/CNI.md). CHECK passes for both, and fails for the first
// once the namespace has no default route at all; DEL of the second leaves
// the first's route.
func runCNITwoNetworks(t *testing.T, d *daemon, bins cniBins, blue *cniEnv, sock string) {
	ns := newNetns(t, "vnt-c2-")
	path := "/var/run/netns/" + ns
	red := newCNIEnvOn(t, bins, sock, "", "red", "eth1")
	checkCNIResult(t, mustTool(t, blue, "add", path), "1.1.0", cniPort(t, d, path), path, "10.71.0.1")
	const first = "default via 10.71.0.1 dev eth0"
	wantDefault(t, ns, first)

	out := mustTool(t, red, "add", path)
	var second portView
	d.must("GET", "/v1/ports/"+cni.PortName(cnitoolContainerID(path), "eth1"), nil, 200, &second)
	parsed, err := current.NewResult([]byte(out))
	if err != nil {
		t.Fatalf("second ADD result %q: %v", out, err)
	}
	if r := parsed.(*current.Result); len(r.Interfaces) != 2 || r.Interfaces[1].Name != "eth1" ||
		len(r.IPs) != 1 || r.IPs[0].Address.String() != second.IP || len(r.Routes) != 0 {
		t.Fatalf("second ADD result, want eth1 with %s and no routes:\n%s", second.IP, out)
	}
	wantDefault(t, ns, first)
	ping(t, ns, "10.72.0.1", true) // red, through eth1's subnet route
	mustTool(t, blue, "check", path)
	mustTool(t, red, "check", path)

	mustTool(t, red, "del", path)
	d.must("GET", "/v1/ports/"+second.Name, nil, 404, nil)
	wantDefault(t, ns, first)
	mustTool(t, blue, "check", path)
	testbed.Run(t, "ip", "-n", ns, "route", "del", "default")
	if _, err := blue.tool("check", path); err == nil || !strings.Contains(err.Error(), "no default route via 10.71.0.1 on eth0, and none in the namespace") {
		t.Fatalf("CHECK without a default route in the namespace: %v", err)
	}
	mustTool(t, blue, "del", path)
	wantDefault(t, ns, "")
}

// runCNIToken: with --token-file, a configuration with token_file works and
// one without is refused with code 7 and a hint.
func runCNIToken(t *testing.T, bins cniBins) {
	hostNS := newNetns(t, "vnt-host-")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("cni-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	d := startSocketDaemon(t, hostNS, sock, "--backend", "linux", "--bridge", "vnbr", "--token-file", tokenFile)
	bearer := &http.Client{Timeout: 90 * time.Second, Transport: &tokenTransport{base: d.client.Transport, token: "cni-s3cret"}}
	d.client = bearer
	d.must("PUT", "/v1/networks/blue", `{"subnet":"10.73.0.0/24"}`, 201, nil)

	nsA := newNetns(t, "vnt-ca-")
	pathA := "/var/run/netns/" + nsA
	noToken := newCNIEnv(t, bins, sock, "")
	msg, code := noToken.plugin(t, "ADD", nil, "CNI_CONTAINERID=tok1", "CNI_NETNS="+pathA, "CNI_IFNAME=eth0")
	if code != types.ErrInvalidNetworkConfig || !strings.Contains(msg, "token_file") {
		t.Fatalf("ADD without the token: code %d, %s", code, msg)
	}
	e := newCNIEnv(t, bins, "unix:"+sock, tokenFile)
	checkCNIResult(t, mustTool(t, e, "add", pathA), "1.1.0", cniPort(t, d, pathA), pathA, "10.73.0.1")
	mustTool(t, e, "check", pathA)
	mustTool(t, e, "status", pathA)
	// A runtime may send DEL without CNI_NETNS; the port goes all the same.
	port := cniPort(t, d, pathA)
	if msg, code := e.plugin(t, "DEL", nil, "CNI_CONTAINERID="+cnitoolContainerID(pathA), "CNI_IFNAME=eth0"); code != 0 {
		t.Fatalf("DEL without CNI_NETNS: code %d, %s", code, msg)
	}
	d.must("GET", "/v1/ports/"+port.Name, nil, 404, nil)
	mustTool(t, e, "del", pathA)
	d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
	d.stop()
	assertNothingLeft(t, hostNS, nil, d.stateDir, nsA)
}

// tokenTransport adds the bearer token to the test's own requests.
type tokenTransport struct {
	base  http.RoundTripper
	token string
}

func (tt *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tt.token)
	return tt.base.RoundTrip(r)
}

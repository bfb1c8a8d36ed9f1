package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// buildVnetctl builds cmd/vnetctl once per test binary, with the race
// detector as the daemon is, beside the daemon (TestMain removes that
// directory). Only the tests that run it pay for the build.
var buildVnetctl = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(daemonBin), "vnetctl")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "./cmd/vnetctl")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/vnetctl: %w\n%s", err, out)
	}
	return bin, nil
})

// vnetctl runs the CLI as a user would, from the root namespace, against one
// daemon: env holds the VNETCTL_* variables every run gets.
type vnetctl struct {
	t   *testing.T
	bin string
	env []string
}

type cliRun struct {
	code        int
	out, errOut string
}

func newVnetctl(t *testing.T, env ...string) vnetctl {
	t.Helper()
	bin, err := buildVnetctl()
	if err != nil {
		t.Fatal(err)
	}
	return vnetctl{t: t, bin: bin, env: env}
}

// runEnv runs vnetctl with args and extra variables on top of the usual ones.
func (v vnetctl) runEnv(extra []string, args ...string) cliRun {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.bin, args...)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "VNETCTL_") })
	cmd.Env = slices.Concat(env, []string{quickRaceExit()}, v.env, extra)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		v.t.Fatalf("vnetctl %s: %v", strings.Join(args, " "), err)
	}
	testbed.CheckRace(v.t, "vnetctl "+strings.Join(args, " "), errOut.String(), cmd.ProcessState)
	return cliRun{code: cmd.ProcessState.ExitCode(), out: out.String(), errOut: errOut.String()}
}

func (v vnetctl) run(args ...string) cliRun {
	v.t.Helper()
	return v.runEnv(nil, args...)
}

// ok runs vnetctl, wants exit 0 and returns its output.
func (v vnetctl) ok(args ...string) string {
	v.t.Helper()
	r := v.run(args...)
	if r.code != 0 {
		v.t.Fatalf("vnetctl %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.out, r.errOut)
	}
	return r.out
}

// json runs vnetctl with -o json and decodes its output into out.
func (v vnetctl) json(out any, args ...string) {
	v.t.Helper()
	raw := v.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(raw), out); err != nil {
		v.t.Fatalf("vnetctl %s -o json: %v\n%s", strings.Join(args, " "), err, raw)
	}
}

// fails wants exit code and every part on stderr, and nothing on stdout.
func (r cliRun) fails(t *testing.T, code int, parts ...string) {
	t.Helper()
	var lacks []string
	for _, p := range parts {
		if !strings.Contains(r.errOut, p) {
			lacks = append(lacks, p)
		}
	}
	if r.code != code || r.out != "" || len(lacks) > 0 {
		t.Fatalf("exit %d, want %d; stderr lacks %q\nstdout:\n%s\nstderr:\n%s", r.code, code, lacks, r.out, r.errOut)
	}
}

// TestCLI drives a real daemon, serving on a unix socket and wanting a
// token, through vnetctl alone: every command, its outputs parsed back, its
// error paths and exit codes, completion from the daemon's objects, and
// traffic between ports made with it.
func TestCLI(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-cli-")
			args, box := bc.setup(t, hostNS)
			dir := t.TempDir()
			sock, tokenFile := filepath.Join(dir, "api.sock"), filepath.Join(dir, "token")
			if err := os.WriteFile(tokenFile, []byte("cli-s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			d := startSocketDaemon(t, hostNS, sock, append(args, "--token-file", tokenFile)...)
			cli := newVnetctl(t, "VNETCTL_SERVER=unix:"+sock, "VNETCTL_TOKEN_FILE="+tokenFile)

			var info v1.Info
			cli.json(&info, "info")
			if info.Backend != bc.kind || info.Bridge == "" {
				t.Fatalf("info: %+v, want backend %s", info, bc.kind)
			}
			if out := cli.ok("info"); !strings.Contains(out, "Backend:             "+bc.kind+"\n") || !strings.Contains(out, "Ready:               yes\n") {
				t.Errorf("info:\n%s", out)
			}

			// Networks: created, unchanged, refused with another spec.
			if out := cli.ok("network", "create", "blue", "--subnet", "10.84.0.0/24"); out != "network blue created\n" {
				t.Errorf("create: %q", out)
			}
			if out := cli.ok("network", "create", "blue", "--subnet", "10.84.0.0/24", "--mtu", "1500"); out != "network blue unchanged\n" {
				t.Errorf("create again: %q", out)
			}
			cli.run("network", "create", "blue", "--subnet", "10.84.0.0/24", "--mtu", "9000").fails(t, 4,
				`Error: conflict: network "blue" exists with a different spec (HTTP 409)`)
			var red model.Network
			cli.json(&red, "network", "create", "red", "--subnet", "10.85.0.0/24", "--gateway", "10.85.0.254", "--masquerade")
			if red.Name != "red" || red.Gateway.String() != "10.85.0.254" || !red.Masquerade || red.MTU != 1500 || red.ID == 0 {
				t.Fatalf("created %+v", red)
			}
			var nets []model.Network
			cli.json(&nets, "network", "ls")
			if len(nets) != 2 || nets[0].Name != "blue" || nets[1] != red {
				t.Fatalf("network ls -o json: %+v", nets)
			}
			if out := cli.ok("network", "list"); !strings.HasPrefix(out, "NAME   SUBNET         GATEWAY       MTU    MASQ   DHCP   ID\n") ||
				!strings.Contains(out, "\nred    10.85.0.0/24   10.85.0.254   1500   yes    yes    ") {
				t.Errorf("network list:\n%s", out)
			}
			if out := cli.ok("network", "list", "-o", "name"); out != "network/blue\nnetwork/red\n" {
				t.Errorf("network list -o name: %q", out)
			}
			cli.run("network", "get", "nope").fails(t, 3, `Error: not found: network "nope" (HTTP 404)`)
			// What DHCP hands out changes in place (docs/DHCP.md).
			if out := cli.ok("network", "set", "blue", "--dns", "10.84.0.53,9.9.9.9", "--domain", "lab.example"); out != "network blue changed\n" {
				t.Errorf("network set: %q", out)
			}
			if out := cli.ok("network", "set", "blue", "--dns", "10.84.0.53", "--dns", "9.9.9.9"); out != "network blue unchanged\n" {
				t.Errorf("network set again: %q", out)
			}
			if out := cli.ok("network", "get", "blue"); !strings.HasSuffix(out, "\ndhcp: yes\ndns: 10.84.0.53, 9.9.9.9\ndomain: lab.example\n") {
				t.Errorf("network get after set:\n%s", out)
			}

			// Ports, made only with the CLI, forward at once.
			nsA, nsB, nsC := newNetns(t, "vnt-a-"), newNetns(t, "vnt-b-"), newNetns(t, "vnt-c-")
			if out := cli.ok("port", "create", "a", "--network", "blue", "--netns", nsA); !strings.HasPrefix(out, "port a created (10.84.0.2/24 ") {
				t.Errorf("port create: %q", out)
			}
			var b, c, vm v1.Port
			cli.json(&b, "port", "create", "b", "--network", "blue", "--netns", "/var/run/netns/"+nsB, "--ifname", "net0", "--ip", "10.84.0.20")
			cli.json(&c, "port", "create", "c", "--network", "red", "--netns", nsC)
			cli.json(&vm, "port", "create", "vm", "--network", "blue", "--type", "tap", "--ifname", "vnt-clitap0")
			if b.IP != "10.84.0.20/24" || b.Ifname != "net0" || c.Gateway != "10.85.0.254" || vm.HostIfname != "vnt-clitap0" {
				t.Fatalf("ports: b %+v, c %+v, vm %+v", b, c, vm)
			}
			if bc.kind == "ovs" && (b.Ofport <= 0 || c.Ofport <= 0) {
				t.Fatalf("ofports: b %d, c %d", b.Ofport, c.Ofport)
			}
			checkNamespaceEnd(t, nsB, "net0", b)
			ping(t, nsA, "10.84.0.20", true)
			ping(t, nsA, strings.Split(c.IP, "/")[0], false) // no router yet
			if out := cli.ok("port", "create", "a", "--network", "blue", "--netns", nsA); !strings.HasPrefix(out, "port a unchanged (") {
				t.Errorf("port create again: %q", out)
			}
			// configure flips in place: the port keeps forwarding.
			if out := cli.ok("port", "set-configure", "a", "false"); out != "port a configure changed (configure false)\n" {
				t.Errorf("port set-configure false: %q", out)
			}
			if out := cli.ok("port", "get", "a"); !strings.HasSuffix(out, "\nconfigure: false\n") {
				t.Errorf("port get after set-configure false:\n%s", out)
			}
			ping(t, nsA, "10.84.0.20", true)
			if out := cli.ok("port", "set-configure", "a", "true"); out != "port a configure changed (configure true)\n" {
				t.Errorf("port set-configure true: %q", out)
			}
			cli.run("port", "create", "a", "--network", "blue", "--netns", nsA, "--ip", "10.84.0.99").fails(t, 4, "Error: conflict: ", "(HTTP 409)")
			cli.run("port", "create", "x", "--network", "nope", "--netns", nsA).fails(t, 3, `Error: not found: network "nope"`, "(HTTP 404)")
			var ports []v1.Port
			cli.json(&ports, "port", "list", "--network", "blue")
			if names := portNames(ports); !slices.Equal(names, []string{"a", "b", "vm"}) {
				t.Fatalf("port list --network blue: %v", names)
			}
			var got v1.Port
			cli.json(&got, "port", "get", "b")
			if !reflect.DeepEqual(got, b) {
				t.Fatalf("port get b: %+v, created %+v", got, b)
			}
			if out := cli.ok("port", "ls"); !strings.HasPrefix(out, "NAME   NETWORK   TYPE   IP ") || !strings.Contains(out, "\nb      blue      veth   10.84.0.20/24   "+b.MAC+"   /var/run/netns/"+nsB+"   net0 ") {
				t.Errorf("port ls:\n%s", out)
			}

			// A router: created, unchanged with the networks in another order, and it routes.
			if out := cli.ok("router", "create", "r1", "--network", "blue", "--network", "red"); out != "router r1 created\n" {
				t.Errorf("router create: %q", out)
			}
			if out := cli.ok("router", "create", "r1", "--networks", "red,blue"); out != "router r1 unchanged\n" {
				t.Errorf("router create again: %q", out)
			}
			ping(t, nsA, strings.Split(c.IP, "/")[0], true)
			var routers []model.Router
			cli.json(&routers, "router", "list")
			if len(routers) != 1 || !slices.Equal(routers[0].Networks, []string{"blue", "red"}) {
				t.Fatalf("router list: %+v", routers)
			}
			cli.run("network", "delete", "blue").fails(t, 4, `Error: conflict: network "blue" is used by`)

			checkCLITopology(t, cli)
			checkCLICompletion(t, cli)
			checkCLIInspect(t, cli, bc.kind, strings.Split(c.IP, "/")[0])

			// Usage, transport and authentication failures.
			cli.run("network", "create", "green", "--subnet", "10.86.0.0/24", "--bogus").fails(t, 2, "Error: unknown flag: --bogus", "\nUsage:\n  vnetctl network create")
			cli.run("port", "get").fails(t, 2, "Error: accepts 1 arg(s), received 0", "Usage:")
			cli.run("--server", "unix:"+filepath.Join(dir, "nothing.sock"), "info").fails(t, 5, "Error: cannot reach ovs-vnet at unix:"+filepath.Join(dir, "nothing.sock"))
			cli.run("--token", "wrong", "network", "list").fails(t, 6, "Error: unauthorized: missing or wrong bearer token (HTTP 401)")
			cli.runEnv([]string{"VNETCTL_TOKEN_FILE="}, "port", "list").fails(t, 6, "(HTTP 401)")

			// Tear down through the CLI: nothing may be left.
			if out := cli.ok("router", "rm", "r1"); out != "router r1 deleted\n" {
				t.Errorf("router rm: %q", out)
			}
			if out := cli.ok("port", "delete", "a", "b", "c", "vm"); out != "port a deleted\nport b deleted\nport c deleted\nport vm deleted\n" {
				t.Errorf("port delete: %q", out)
			}
			cli.run("port", "get", "a").fails(t, 3, `Error: not found: port "a" (HTTP 404)`)
			cli.ok("network", "rm", "blue", "red")
			if out := cli.ok("network", "rm", "blue", "--ignore-not-found"); out != "" {
				t.Errorf("rm --ignore-not-found: %q", out)
			}
			if r := cli.run("network", "ls"); r.code != 0 || r.out != "" || r.errOut != "No networks found.\n" {
				t.Errorf("network ls when empty: %+v", r)
			}
			d.stop()
			assertNothingLeft(t, hostNS, box, d.stateDir, nsA, nsB, nsC)
		})
	}
}

// checkCLIInspect: trace and flows through the CLI; ports a, b (10.84.0.20)
// in blue and c (cIP) in red, which router r1 joins.
func checkCLIInspect(t *testing.T, cli vnetctl, kind, cIP string) {
	t.Helper()
	if out := cli.ok("trace", "--from", "a", "--to", cIP); !strings.Contains(out, "Verdict: delivered to port c (network red), routed from blue by router r1\n") ||
		(kind == "ovs" && !strings.Contains(out, "route ") && !strings.Contains(out, "routes of network blue")) {
		t.Errorf("trace across the router:\n%s", out)
	}
	var res v1.Result
	cli.json(&res, "trace", "--from", "a", "--to", "10.84.0.20", "--proto", "tcp", "--dport", "80", "--src", "10.84.0.77")
	if res.Verdict != v1.Dropped || res.Reason != "spoofed" || len(res.Steps) == 0 {
		t.Errorf("spoofed trace: %+v", res)
	}
	cli.run("trace", "--from", "a", "--to", "nowhere").fails(t, 2, `Error: --to "nowhere": want an IPv4 address`, "Usage:")
	cli.run("trace", "--from", "nope", "--to", "10.84.0.20").fails(t, 3, `Error: not found: port "nope" (HTTP 404)`)
	cli.run("trace", "--from", "a", "--to", "10.84.0.20", "--proto", "tcp").fails(t, 1, "needs a destination port", "(HTTP 400)")
	cli.run("flows", "--port", "a", "--network", "blue").fails(t, 2, "give --port or --network, not both")
	if kind != "ovs" {
		cli.run("flows").fails(t, 1, "nft list table", "(HTTP 501)")
		return
	}
	if out := cli.ok("flows", "--port", "a"); !strings.HasPrefix(out, "# port a: ") || !strings.Contains(out, " cookie=0x7604") || strings.Contains(out, "# port b") {
		t.Errorf("flows --port a:\n%s", out)
	}
	var flows []v1.Flow
	cli.json(&flows, "flows", "--network", "red")
	if len(flows) == 0 {
		t.Fatal("no flows of network red")
	}
	for _, f := range flows {
		if (f.OwnerKind == "port" && f.Owner != "c") || (f.OwnerKind != "port" && f.Owner != "red") {
			t.Errorf("flow of network red: %+v", f)
		}
	}
}

func checkCLITopology(t *testing.T, cli vnetctl) {
	t.Helper()
	var topo struct {
		Networks []model.Network
		Routers  []model.Router
		Ports    []v1.Port
	}
	cli.json(&topo, "topology")
	if len(topo.Networks) != 2 || len(topo.Routers) != 1 || len(topo.Ports) != 4 {
		t.Fatalf("topology -o json: %+v", topo)
	}
	tree := cli.ok("topology")
	for _, want := range []string{"network blue (10.84.0.0/24, gateway 10.84.0.1, mtu 1500)\n", "\n└── vm  ", "tap vnt-clitap0\n", "router r1: blue <-> red\n"} {
		if !strings.Contains(tree, want) {
			t.Errorf("topology lacks %q:\n%s", want, tree)
		}
	}
	dot := cli.ok("topology", "-o", "dot")
	for _, want := range []string{`"net:blue" [`, `"net:red" [`, `"port:a" [`, `"port:vm" [`, `"router:r1" [`,
		`"net:blue" -- "port:b"`, `"net:red" -- "port:c"`, `"router:r1" -- "net:red"`, `"outside" -- "net:red"`} {
		if !strings.Contains(dot, want) {
			t.Errorf("topology -o dot lacks %s:\n%s", want, dot)
		}
	}
	_, err := exec.LookPath("dot")
	testbed.Need(t, err == nil, "graphviz (dot) to render the topology")
	render := exec.Command("dot", "-Tsvg")
	render.Stdin = strings.NewReader(dot)
	if out, err := render.CombinedOutput(); err != nil || !strings.Contains(string(out), "<svg") {
		t.Errorf("dot -Tsvg: %v\n%.1000s", err, out)
	}
}

// checkCLICompletion asks for completions as the shell scripts do, through
// the hidden __complete command: object names come from the daemon.
func checkCLICompletion(t *testing.T, cli vnetctl) {
	t.Helper()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"port", "get", ""}, "a\nb\nc\nvm\n:4\n"},
		{[]string{"port", "delete", "a", "c", ""}, "b\nvm\n:4\n"},
		{[]string{"network", "get", ""}, "blue\nred\n:4\n"},
		{[]string{"router", "rm", ""}, "r1\n:4\n"},
		{[]string{"port", "create", "d", "--network", ""}, "blue\nred\n:4\n"},
		{[]string{"port", "list", "--network", "r"}, "blue\nred\n:4\n"}, // the shell filters by prefix
	} {
		if out := cli.ok(append([]string{"__complete"}, c.args...)...); out != c.want {
			t.Errorf("__complete %q:\n%s\nwant\n%s", c.args, out, c.want)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if out := cli.ok("completion", shell); !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: %d bytes without __complete", shell, len(out))
		}
	}
}

func portNames(ports []v1.Port) []string {
	var names []string
	for _, p := range ports {
		names = append(names, p.Name)
	}
	return names
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// Everything a test makes on the machine — namespaces, OVS sandboxes, daemons —
// lives inside a "host" network namespace of its own, so the machine's own
// interfaces, routes and nftables are never seen, let alone changed.

var (
	repoRoot  string
	daemonBin string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return testbed.NeedMain("root: namespaces, links, OVS")
	}
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	repoRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "ovs-vnet-e2e-bin-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	daemonBin = filepath.Join(dir, "ovs-vnet")
	// Tests run the daemon with the race detector; benchmarks measure the binary users run.
	flag.Parse()
	args := []string{"build", "-race", "-o", daemonBin, "./cmd/ovs-vnet"}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		args = slices.Delete(args, 1, 2)
	}
	build := exec.Command("go", args...)
	build.Dir, build.Stdout, build.Stderr = repoRoot, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build daemon:", err)
		return 1
	}
	return m.Run()
}

// newNetns creates a named network namespace with lo up, deleted at cleanup.
func newNetns(t testing.TB, prefix string) string {
	t.Helper()
	name := testbed.UniqueName(prefix)
	// Names carry 24 random bits: a benchmark's thousand namespaces meet
	// one taken name in a few percent of runs. Another name does.
	for try := 0; ; try++ {
		out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
		if err == nil {
			break
		}
		if !strings.Contains(string(out), "File exists") || try == 3 {
			t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
		}
		name = testbed.UniqueName(prefix)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	testbed.Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// quickRaceExit is the GORACE setting for short-lived race-built programs
// (vnetctl, the CNI plugin) run dozens of times: the race runtime waits a
// second at exit for late reports, where a test would spend most of its time.
func quickRaceExit() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// daemon is the real ovs-vnet binary running inside a host namespace.
type daemon struct {
	t        testing.TB
	hostNS   string
	stateDir string
	args     []string
	cmd      *exec.Cmd
	log      *testbed.SyncBuffer
	// raceChecked is how much of log ended runs have been checked for race
	// reports (see ended): a restarted daemon's log holds its past runs.
	raceChecked int
	client      *http.Client
	base        string
}

func startDaemon(t testing.TB, hostNS string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, hostNS: hostNS, stateDir: t.TempDir(), args: args, base: "http://127.0.0.1:9476"}
	d.client = &http.Client{
		Timeout:   90 * time.Second,
		Transport: &http.Transport{DialContext: dialInNetns("/var/run/netns/" + hostNS), DisableKeepAlives: true},
	}
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	d.start()
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	d.launch()
	d.waitReady()
}

// launch starts the daemon without waiting for it.
func (d *daemon) launch() {
	d.t.Helper()
	args := append([]string{"netns", "exec", d.hostNS, daemonBin, "--state-dir", d.stateDir, "--log-level", "debug"}, d.args...)
	d.cmd = exec.Command("ip", args...)
	if d.log == nil {
		d.log = &testbed.SyncBuffer{}
	}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start daemon: %v", err)
	}
}

func (d *daemon) waitReady() {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := d.do("GET", "/readyz", nil); code == http.StatusOK {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("daemon not ready after 30s; log:\n%s", d.log)
}

// stop sends SIGTERM, as systemd would, and waits for a clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			d.t.Errorf("daemon exit: %v\n%s", err, d.log)
		}
		d.ended()
	case <-time.After(20 * time.Second):
		d.t.Errorf("daemon did not stop within 20s")
		_ = d.cmd.Process.Kill()
		<-done
		d.ended()
	}
}

func (d *daemon) kill() {
	if d.cmd != nil {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
		d.ended()
	}
}

// ended is called once the daemon's process has been waited for, however it
// ended: the race detector's reports of this run fail the test, also those
// of a daemon that was killed.
func (d *daemon) ended() {
	d.t.Helper()
	out := d.log.String()
	testbed.CheckRace(d.t, "daemon", out[min(d.raceChecked, len(out)):], d.cmd.ProcessState)
	d.raceChecked = len(out)
	d.cmd = nil
}

// do sends a request with a JSON (or raw []byte) body and returns status and body.
func (d *daemon) do(method, path string, body any) (int, []byte) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			d.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, d.base+path, rd)
	if err != nil {
		d.t.Fatal(err)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must sends a request, checks its status and decodes the answer into out (if not nil).
func (d *daemon) must(method, path string, body any, want int, out any) {
	d.t.Helper()
	code, resp := d.do(method, path, body)
	if code != want {
		d.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, resp)
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			d.t.Fatalf("%s %s: decode %s: %v", method, path, resp, err)
		}
	}
}

func dialInNetns(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = testbed.InNetns(path, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// bridgePorts lists br-vnet's ports but the free spare ports (host link alias
// ovs-vnet:spare): those are the daemon's stock, no port's, and come and go
// with its refills (datapath/ovs/spares.go).
func bridgePorts(t *testing.T, box *testbed.Sandbox, hostNS string) []string {
	t.Helper()
	spare := map[string]bool{}
	for _, l := range linksIn(t, hostNS) {
		if l.Attrs().Alias == link.SpareAlias {
			spare[l.Attrs().Name] = true
		}
	}
	return slices.DeleteFunc(strings.Fields(box.Vsctl(t, "list-ports", "br-vnet")), func(name string) bool { return spare[name] })
}

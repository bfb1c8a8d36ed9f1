package ovsdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// The package's tests share one ovsdb-server + ovs-vswitchd, brought up by
// TestMain with hack/ovs-sandbox.sh in a network namespace of its own: two
// userspace vswitchd in one namespace conflict, and go test runs packages in
// parallel.
var sb *sandbox

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// These tests are the proof that the client works against a real OVS:
	// without one they are skipped, or fail under `make test`.
	if why := missingPrereq(); why != "" {
		return testbed.NeedMain("a real OVS (hack/install-deps.sh, as root): " + why)
	}
	var err error
	sb, err = startSandbox()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start OVS sandbox: %v\n", err)
		return 1
	}
	defer sb.down()
	return m.Run()
}

func missingPrereq() string {
	for _, bin := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " not installed"
		}
	}
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	return ""
}

type sandbox struct {
	script string // hack/ovs-sandbox.sh
	dir    string
	netns  string
}

func (s *sandbox) endpoint() string     { return "unix:" + s.path("db.sock") }
func (s *sandbox) path(f string) string { return filepath.Join(s.dir, f) }

func startSandbox() (*sandbox, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: unix socket paths must stay under 108 bytes. Resolved,
	// because the script matches daemons by their exact --pidfile path.
	dir, err := os.MkdirTemp("", "vnt-ovsdb-")
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("make sandbox dir: %w", err)
	}
	s := &sandbox{
		script: filepath.Join(root, "hack", "ovs-sandbox.sh"),
		dir:    dir,
		netns:  fmt.Sprintf("vnt-ovsdb-%d", os.Getpid()),
	}
	if _, err := run(s.script, "up", s.dir, "--netns", s.netns); err != nil {
		s.down()
		return nil, err
	}
	return s, nil
}

// repoRoot is the directory of go.mod above the test's working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// startDB starts ovsdb-server again exactly as ovs-sandbox.sh does, so that
// its down still recognises the daemon. It returns once ovs-vswitchd is back
// too: its reconnect backoff grows to 8 s, and the next test must not pay it.
func (s *sandbox) startDB() error {
	_, err := run("ip", "netns", "exec", s.netns, "env", "OVS_RUNDIR="+s.dir, "OVS_LOGDIR="+s.dir, "OVS_DBDIR="+s.dir,
		"ovsdb-server", s.path("conf.db"), "-vconsole:err", "--remote=punix:"+s.path("db.sock"),
		"--unixctl="+s.path("ovsdb-server.ctl"), "--pidfile="+s.path("ovsdb-server.pid"),
		"--log-file="+s.path("ovsdb-server.log"), "--detach", "--no-chdir")
	if err != nil {
		return err
	}
	// ovs-vsctl waits for ovs-vswitchd only after a change, so make one.
	_, err = s.vsctl("set", "Open_vSwitch", ".", fmt.Sprintf("external_ids:vnt-sync=%d", time.Now().UnixNano()))
	return err
}

// stopDB kills ovsdb-server by its own pid and waits until it is gone.
func (s *sandbox) stopDB() error {
	return killPidfile(s.path("ovsdb-server.pid"), 5*time.Second)
}

// down tears everything down, best effort: it also runs after a failed up.
func (s *sandbox) down() {
	if _, err := run(s.script, "down", s.dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

func (s *sandbox) vsctl(args ...string) (string, error) {
	return run("ovs-vsctl", append([]string{"--db=" + s.endpoint(), "--timeout=10"}, args...)...)
}

// mustVsctl runs ovs-vsctl as the independent witness of what is in the
// database and returns its trimmed output.
func (s *sandbox) mustVsctl(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := s.vsctl(args...)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// veth creates a veth pair in the sandbox namespace, with the OVS end (name)
// up, and removes it when the test ends.
func (s *sandbox) veth(tb testing.TB, name string) {
	tb.Helper()
	peer := name + "p"
	if _, err := s.ip("link", "add", name, "type", "veth", "peer", "name", peer); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if _, err := s.ip("link", "del", name); err != nil {
			tb.Error(err)
		}
	})
	if _, err := s.ip("link", "set", name, "up"); err != nil {
		tb.Fatal(err)
	}
}

func (s *sandbox) ip(args ...string) (string, error) {
	return run("ip", append([]string{"-n", s.netns}, args...)...)
}

func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// killPidfile sends SIGTERM to the daemon named in pidfile and waits for it
// to exit, with SIGKILL as the last resort. A missing pidfile is success.
func killPidfile(pidfile string, wait time.Duration) error {
	b, err := os.ReadFile(pidfile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("pidfile %s: %w", pidfile, err)
	}
	sig := syscall.SIGTERM
	deadline := time.Now().Add(wait)
	for alive(pid) {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill %d: %w", pid, err)
		}
		if time.Now().After(deadline) {
			if sig == syscall.SIGKILL {
				return fmt.Errorf("pid %d (%s) did not exit", pid, pidfile)
			}
			sig, deadline = syscall.SIGKILL, time.Now().Add(wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// alive treats a zombie as gone: a detached daemon is not our child, and
// whether anyone reaps it here is not up to us.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

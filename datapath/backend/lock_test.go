package backend

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// discard is the logger of Locks whose warnings a test does not read.
var discard = slog.New(slog.DiscardHandler)

// lockNetns makes a network namespace for the test and returns its path.
func lockNetns(t *testing.T) string {
	return "/var/run/netns/" + testbed.Netns(t, "vnt-lock-")
}

// TestLock: in one network namespace the lock is one daemon's, and the
// next is told who holds it; another namespace sharing the directory has
// a lock of its own; the lock is free again once released, and once its
// holder is killed with SIGKILL.
func TestLock(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root for network namespaces")
	a, b := lockNetns(t), lockNetns(t)
	dir := filepath.Join(t.TempDir(), "run") // made by Lock
	id := Identity{PID: os.Getpid(), Host: "h", Netns: "net:[1]", Backend: "linux", Bridge: "vnbr", StateDir: "/var/lib/x"}
	var release func()
	in := func(ns string, f func() error) error {
		t.Helper()
		return testbed.InNetns(ns, f)
	}
	if err := in(a, func() (err error) { release, err = Lock(dir, id, discard); return err }); err != nil {
		t.Fatal(err)
	}
	err := in(a, func() error { _, err := Lock(dir, Identity{PID: 1}, discard); return err })
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d on h in net:[1], --backend linux, --bridge vnbr, --state-dir /var/lib/x", os.Getpid())) {
		t.Fatalf("second lock in the namespace: %v, want ErrLocked naming the holder", err)
	}
	lockOnce := func() error {
		r, err := Lock(dir, id, discard)
		if err == nil {
			r()
		}
		return err
	}
	if err := in(b, lockOnce); err != nil {
		t.Fatalf("lock in another namespace: %v", err)
	}
	release()
	if err := in(a, lockOnce); err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("lock file %s: mode %v, want 0600", f, fi.Mode())
		}
	}

	// A holder killed with SIGKILL leaves no lock. A shell holds it with
	// flock(1), then becomes sleep(1) with the lock's file open: a
	// holder that says nothing of itself, while the file still names a
	// daemon that is gone.
	var path string
	_ = in(a, func() error {
		var ns syscall.Stat_t
		err := syscall.Stat("/proc/thread-self/ns/net", &ns)
		path = filepath.Join(dir, fmt.Sprintf("netns-%d-%d.lock", ns.Dev, ns.Ino))
		return err
	})
	holder := exec.Command("bash", "-c", `exec 9>>"$0" && flock --timeout 10 9 && exec sleep 60`, path)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	// Wait for the shell's lock with flock(1), which leaves the file be
	// (the shell waits while this probe has it).
	for deadline := time.Now().Add(10 * time.Second); exec.Command("flock", "--nonblock", path, "true").Run() == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the shell did not take the lock")
		}
	}
	// The file still names a daemon that was killed: not the holder.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`{"pid":%d}`, gone.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	err = in(a, lockOnce)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("it does not say who it is: the lock file names pid %d, which is gone", gone.Process.Pid)) {
		t.Fatalf("lock held by a silent holder: %v", err)
	}
	_ = holder.Process.Signal(syscall.SIGKILL)
	_ = holder.Wait()
	if err := in(a, lockOnce); err != nil {
		t.Fatalf("lock after its holder was killed: %v", err)
	}
}

// TestLockDirRefused: a lock directory that another user could write in,
// or that is another user's, is refused before any lock is taken.
func TestLockDirRefused(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root to give a directory away")
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	theirs := t.TempDir()
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{open, theirs, file} {
		if r, err := Lock(dir, Identity{}, discard); err == nil || !strings.Contains(err.Error(), "another user could take the lock") {
			if r != nil {
				r()
			}
			t.Errorf("Lock in %s: %v, want a refusal", dir, err)
		}
	}
}

// TestLockOtherMountNamespace: a daemon whose lock directory is not the
// holder's — as in a container with the host's network but a
// /run/ovs-vnet of its own — is refused all the same, through the
// abstract socket, naming the holder's pid; released, the namespace is
// free again.
func TestLockOtherMountNamespace(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root for network namespaces")
	ns := lockNetns(t)
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	var release func()
	if err := testbed.InNetns(ns, func() (err error) { release, err = Lock(dirA, Identity{PID: os.Getpid()}, discard); return err }); err != nil {
		t.Fatal(err)
	}
	err := testbed.InNetns(ns, func() error { _, err := Lock(dirB, Identity{PID: 1}, discard); return err })
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("(pid %d, uid 0): it holds this network namespace through the abstract socket @ovs-vnet but not through %s", os.Getpid(), dirB)) {
		t.Fatalf("lock in the holder's namespace with another lock directory: %v, want ErrLocked naming the holder", err)
	}
	release()
	if err := testbed.InNetns(ns, func() error {
		r, err := Lock(dirB, Identity{PID: 1}, discard)
		if err == nil {
			r()
		}
		return err
	}); err != nil {
		t.Fatalf("lock with another lock directory after release: %v", err)
	}
}

// TestLockAbstractSquatter: another user's process bound to @ovs-vnet in
// the namespace, listening or not, does not keep the daemon from
// starting: the lock is taken, and the squatter logged.
func TestLockAbstractSquatter(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root for network namespaces and another user")
	_, err := exec.LookPath("python3")
	testbed.Need(t, err == nil, "python3")
	// Binds, listens if told, says its pid and waits for its stdin to close.
	const squat = `import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0ovs-vnet")
if sys.argv[1] == "listen":
    s.listen()
print(os.getpid(), flush=True)
sys.stdin.read()
`
	for _, mode := range []string{"listen", "bind"} {
		t.Run(mode, func(t *testing.T) {
			ns := lockNetns(t)
			// Through sh, whose search of $PATH passes over what the
			// user may not run (root's own python3, say).
			cmd := exec.Command("ip", "netns", "exec", filepath.Base(ns), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				"sh", "-c", `exec python3 -c "$0" "$1"`, squat, mode)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stop := func() error { stdin.Close(); return cmd.Wait() }
			var pid int
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err == nil {
				_, err = fmt.Sscan(line, &pid)
			}
			if err != nil {
				werr := stop()
				t.Fatalf("the squatter did not start: %q: %v; %v: %s", line, err, werr, stderr.Bytes())
			}
			t.Cleanup(func() { _ = stop() })
			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, nil))
			if err := testbed.InNetns(ns, func() error {
				r, err := Lock(filepath.Join(t.TempDir(), "run"), Identity{PID: os.Getpid()}, log)
				if err == nil {
					r()
				}
				return err
			}); err != nil {
				t.Fatalf("lock beside another user's @ovs-vnet: %v", err)
			}
			want := fmt.Sprintf("pid=%d uid=65534", pid)
			if mode == "bind" {
				want = "by whom cannot be told"
			}
			if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), want) {
				t.Errorf("logged %q, want a warning with %q", logged.String(), want)
			}
		})
	}
}

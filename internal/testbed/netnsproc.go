package testbed

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// NetnsProcess is a process started in a named network namespace, whose
// /proc path a port can name as its netns. A line on Move makes it run
// then: the script decides what (an exec of `unshare -n` or `nsenter` moves
// it to another namespace, which is what a reused PID looks like from the
// path). It is killed at cleanup.
type NetnsProcess struct {
	Path string // /proc/PID/ns/net
	Move io.Writer
}

// StartNetnsProcess runs `sh -c script` in netns ns, and returns once its
// path names ns.
func StartNetnsProcess(tb testing.TB, ns, script string) NetnsProcess {
	tb.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "sh", "-c", script)
	move, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := NetnsProcess{Path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), Move: move}
	p.WaitIn(tb, ns, true)
	return p
}

// WaitIn waits, bounded, until the process's path names netns ns (in), or
// names another namespace (!in).
func (p NetnsProcess) WaitIn(tb testing.TB, ns string, in bool) {
	tb.Helper()
	named, err := netnsInode("/var/run/netns/" + ns)
	if err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, err := netnsInode(p.Path); err == nil && (got == named) == in {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s never came to be in netns %s (in=%v)", p.Path, ns, in)
		}
	}
}

// netnsInode tells namespaces apart as datapath/nsfile does (which this
// package, imported by the datapath's tests, cannot import): the device
// and inode of their nsfs file.
func netnsInode(path string) ([2]uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return [2]uint64{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return [2]uint64{st.Dev, st.Ino}, nil
}

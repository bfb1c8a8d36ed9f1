package nsfile

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// newNetns makes a namespace with `ip netns add`, deleted at cleanup.
func newNetns(t *testing.T) string {
	return "/var/run/netns/" + testbed.Netns(t, "vnt-nsf-")
}

// TestOpenRefuses: what is not a network namespace a port may use is
// refused at once, as invalid, and nothing is opened on the way (the FIFO
// has no writer: opening it would block this test for good).
func TestOpenRefuses(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: /proc/1/ns, ip netns")
	dir := t.TempDir()
	fifo, file := filepath.Join(dir, "fifo"), filepath.Join(dir, "file")
	if err := errors.Join(unix.Mkfifo(fifo, 0o600), os.WriteFile(file, nil, 0o600)); err != nil {
		t.Fatal(err)
	}
	// A bind mount of the daemon's (here the test's) own namespace, as
	// `ip netns attach` makes one: a path other than /proc's.
	ownMount := "/var/run/netns/" + testbed.UniqueName("vnt-own-")
	testbed.Run(t, "ip", "netns", "attach", filepath.Base(ownMount), strconv.Itoa(os.Getpid()))
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", filepath.Base(ownMount)).Run() })
	for _, path := range []string{
		fifo, dir, file, "/dev/null", "/dev/zero",
		"/proc/self/ns/net", "/proc/thread-self/ns/net", "/proc/1/ns/net", ownMount,
		"/proc/self/ns/mnt", // a namespace, but not a network namespace
	} {
		ns, err := Open(context.Background(), path)
		if err == nil {
			ns.Close()
			t.Errorf("%s: opened, want refused", path)
			continue
		}
		if !errors.Is(err, v1.ErrInvalid) {
			t.Errorf("%s: %v, want v1.ErrInvalid", path, err)
		}
	}
	if _, err := Open(context.Background(), filepath.Join(dir, "missing")); !errors.Is(err, datapath.ErrNoNetns) {
		t.Errorf("missing path: %v, want datapath.ErrNoNetns", err)
	}
}

// TestOpenNetns: a namespace of its own is opened, by name and by
// /proc/PID/ns/net, and the handle reaches into it.
func TestOpenNetns(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: ip netns")
	path := newNetns(t)
	sleep := exec.Command("ip", "netns", "exec", filepath.Base(path), "sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	pidPath := "/proc/" + strconv.Itoa(sleep.Process.Pid) + "/ns/net"
	own, _ := os.Readlink("/proc/self/ns/net")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if at, err := os.Readlink(pidPath); err != nil || at != own {
			break // in the namespace (or gone, which Open says)
		}
		if time.Now().After(deadline) {
			t.Fatal("ip netns exec did not enter the namespace within 30s")
		}
	}
	for _, p := range []string{path, pidPath} {
		ns, err := Open(context.Background(), p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		h, err := netlink.NewHandleAt(ns)
		if err == nil {
			_, err = h.LinkByName("lo")
			h.Close()
		}
		ns.Close()
		if err != nil {
			t.Fatalf("%s: lo in the namespace: %v", p, err)
		}
	}
}

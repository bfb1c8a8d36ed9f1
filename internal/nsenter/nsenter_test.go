package nsenter_test

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/internal/nsenter"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// threadNetns is the identity of the calling thread's network namespace.
func threadNetns(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestRun(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates a network namespace")
	path := "/var/run/netns/" + testbed.Netns(t, "vnt-nsenter-")
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread() // so that "the caller's thread" stays one thread
	defer runtime.UnlockOSThread()
	home := threadNetns(t)

	var inside uint64
	var lo bool
	err := nsenter.RunAt(path, func() error {
		var st unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
			return err
		}
		inside = st.Ino
		// A namespace of its own has lo down and nothing else.
		out, err := os.ReadFile("/proc/thread-self/net/dev")
		lo = err == nil && strings.Count(string(out), "\n") == 3 && strings.Contains(string(out), "lo:")
		return err
	})
	if err != nil || inside != want.Ino || !lo {
		t.Fatalf("RunAt = %v; f ran in netns %d (want %d), saw only lo: %v", err, inside, want.Ino, lo)
	}
	if now := threadNetns(t); now != home {
		t.Fatalf("the caller's thread moved from netns %d to %d", home, now)
	}

	wantErr := errors.New("f's own error")
	if err := nsenter.RunAt(path, func() error { return wantErr }); err != wantErr {
		t.Errorf("RunAt = %v, want f's error", err)
	}
	if err := nsenter.RunAt(path, func() error { runtime.Goexit(); return nil }); err == nil || !strings.Contains(err.Error(), "Goexit") {
		t.Errorf("RunAt of an f that calls Goexit = %v, want an error saying so", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "in f" {
				t.Errorf("recovered %v, want f's panic", p)
			}
		}()
		_ = nsenter.RunAt(path, func() error { panic("in f") })
	}()
	if err := nsenter.RunAt("/nonexistent/netns", func() error { return nil }); err == nil {
		t.Error("RunAt of a missing path succeeded")
	}
	if err := nsenter.Run(netns.None(), func() error { return nil }); err == nil {
		t.Error("Run of a closed handle succeeded")
	}
}

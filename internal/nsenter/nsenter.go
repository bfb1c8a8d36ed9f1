// Package nsenter runs a function inside a network namespace, for the
// daemon (a socket opened in a port's namespace: datapath/link/ethtool.go)
// and for the tests (internal/testbed.InNetns) alike. It imports nothing of
// the project, so that any package may use it without a cycle.
package nsenter

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// errGoexit stands for the result of an f that never returned: it called
// runtime.Goexit, as t.FailNow does.
var errGoexit = errors.New("nsenter: f called runtime.Goexit (t.FailNow?) instead of returning")

// Run runs f on a goroutine of its own, locked to an OS thread switched into
// ns, and returns what f returns. The namespace is a thread's, so only f's
// own thread is in ns: a goroutine f starts is not, but a socket f opens
// stays in ns for its lifetime, and a process f starts is born there.
//
// The caller's goroutine is never switched: were switching back to fail,
// its thread would be left in ns and go on running whatever the caller does
// next. f's thread is switched back when f returns; if that fails, the
// thread stays locked to the goroutine, which ends at once, and the runtime
// retires the thread with it rather than schedule other goroutines on it.
// As it runs on another goroutine, f must not call t.FailNow (t.Error is
// fine); a panic in f is raised again in the caller.
func Run(ns netns.NsHandle, f func() error) error {
	type result struct {
		err      error
		panicked any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("current netns: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			// setns(2) changes nothing when it fails.
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter netns: %w", err)}
			return
		}
		r := result{err: errGoexit}
		defer func() {
			if p := recover(); p != nil {
				r = result{panicked: p}
			}
			if err := netns.Set(orig); err != nil {
				// Still locked: the thread ends with this goroutine.
				r.err = errors.Join(r.err, fmt.Errorf("leave netns: %w", err))
			} else {
				runtime.UnlockOSThread()
			}
			done <- r
		}()
		r.err = f()
	}()
	r := <-done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// RunAt runs f as Run does, in the namespace at path.
func RunAt(path string, f func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	return Run(ns, f)
}

//go:build faultinject

package fault

import (
	"fmt"
	"os"
	"syscall"
)

// Enabled reports whether this build carries the crash hook.
const Enabled = true

// armed is the point this process crashes at, read once at start.
var armed = os.Getenv(Env)

// Point kills the process with SIGKILL when name is the armed point, and
// blocks its caller for good when the point is armed as "hang:NAME" (a
// kernel call that never returns). It says so on stderr first, so a test can
// tell the planned fault from another.
func Point(name string) {
	switch armed {
	case name:
		fmt.Fprintf(os.Stderr, "fault: crash at %s\n", name)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; wait for it to land
	case hangPrefix + name:
		fmt.Fprintf(os.Stderr, "fault: hang at %s\n", name)
		select {}
	}
}

// hangPrefix arms a point to hang rather than crash.
const hangPrefix = "hang:"

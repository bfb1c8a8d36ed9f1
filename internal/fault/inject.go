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

// Point kills the process with SIGKILL when name is the armed point. It says
// so on stderr first, so a test can tell the planned crash from another death.
func Point(name string) {
	if armed == "" || name != armed {
		return
	}
	fmt.Fprintf(os.Stderr, "fault: crash at %s\n", name)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; wait for it to land
}

//go:build !faultinject

package fault

// Enabled reports whether this build carries the crash hook.
const Enabled = false

// Point does nothing: this build has no fault injection.
func Point(string) {}

// Package buildinfo names the build of a binary the same way in the daemon,
// vnetctl and the CNI plugin, so their versions can be compared.
package buildinfo

import "runtime/debug"

// Version is the module version, or else the VCS revision the go command
// stamped into the binary (12 digits, "-dirty" for a modified tree), or
// "devel" without either.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "devel", ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	return rev + dirty
}

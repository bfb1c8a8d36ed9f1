package testbed

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// StrictEnv is set to 1 by `make test` (and so in CI, which runs it): every
// test runs there, so a missing prerequisite is a broken machine and fails
// the run. CI=true means the same, for a CI that runs go test by hand.
const StrictEnv = "OVS_VNET_TEST_STRICT"

// strict tells whether a missing prerequisite fails rather than skips.
func strict() bool {
	return os.Getenv(StrictEnv) == "1" || os.Getenv("CI") == "true"
}

// Need is the one way a test gives up for want of a prerequisite (root, a
// binary, a kernel feature): in strict mode it fails the test; elsewhere it
// skips it, and says so where a plain `go test ./...` shows it.
func Need(tb testing.TB, ok bool, what string) {
	tb.Helper()
	if ok {
		return
	}
	if strict() {
		tb.Fatalf("missing prerequisite: %s (fails rather than skips: %s=1 or CI=true)", what, StrictEnv)
	}
	announce(tb.Name(), what)
	tb.Skipf("missing prerequisite: %s", what)
}

// NeedMain is Need for a TestMain whose every test needs what, called when
// it is missing: it returns the exit code of the test binary, 1 in strict
// mode and 0 (every test skipped, and said so) elsewhere.
func NeedMain(what string) int {
	if strict() {
		fmt.Fprintf(os.Stderr, "missing prerequisite: %s (fails rather than skips: %s=1 or CI=true)\n", what, StrictEnv)
		return 1
	}
	announce("every test", what)
	return 0
}

// announce says that a test is skipped. go test shows nothing of a package
// that passes but its "ok" line, and a package whose tests skip passes, so
// the line goes to the terminal when there is one and to stderr (seen under
// -v) when not: someone who runs go test as a user must learn that a part
// of the suite did not run, and how to run it.
func announce(test, what string) {
	var w io.Writer = os.Stderr
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		w = tty
	}
	fmt.Fprintf(w, "SKIPPED %s %s: missing %s; `make test`, as root, runs it (and fails where a prerequisite is missing)\n", pkgDir(), test, what)
}

// pkgDir is the package under test, as a directory of the module: go test
// runs a test binary in its package's directory.
func pkgDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "?"
	}
	for dir := wd; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if rel, err := filepath.Rel(dir, wd); err == nil {
				return "./" + filepath.ToSlash(rel)
			}
		}
	}
	return wd
}

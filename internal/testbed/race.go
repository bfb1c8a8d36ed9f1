package testbed

import (
	"os"
	"strings"
	"testing"
)

// raceExitCode is the exit status the race runtime gives a program that
// reported a data race (GORACE exitcode, 66 by default).
const raceExitCode = 66

// raceMark starts every report the race runtime prints.
const raceMark = "WARNING: DATA RACE"

// CheckRace fails tb when a program built with -race reported a data race:
// its output holds a report, or it exited with the race runtime's status.
// The runtime prints each report when the race happens, so the output of a
// program that was killed (SIGKILL, no exit status) still holds its reports.
// state may be nil (the program is not ours to wait for: only its output
// is looked at).
func CheckRace(tb testing.TB, what, output string, state *os.ProcessState) {
	tb.Helper()
	raced := strings.Contains(output, raceMark)
	if state != nil && state.Exited() && state.ExitCode() == raceExitCode {
		raced = true
	}
	if raced {
		tb.Errorf("%s reported a data race (race-built; exit status %v); its output:\n%s", what, state, output)
	}
}

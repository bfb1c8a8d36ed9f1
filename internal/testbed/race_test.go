package testbed

import (
	"os"
	"os/exec"
	"testing"
)

// recorder is a testing.TB that records whether it was failed.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }

// TestCheckRace: a race report in the output fails the test, whether the
// program exited with the race runtime's status or was killed; so does
// that status alone; a clean run does not.
func TestCheckRace(t *testing.T) {
	exit := func(code string) *os.ProcessState {
		cmd := exec.Command("sh", "-c", "exit "+code)
		_ = cmd.Run()
		return cmd.ProcessState
	}
	report := "==================\nWARNING: DATA RACE\nWrite at 0x00c000 by goroutine 7:\n"
	for _, c := range []struct {
		name, out string
		state     *os.ProcessState
		want      bool
	}{
		{"clean exit", "serving\n", exit("0"), false},
		{"report, status 66", report, exit("66"), true},
		{"report, killed (no status)", report, nil, true},
		{"status 66 alone", "", exit("66"), true},
		{"other failure", "error\n", exit("1"), false},
	} {
		r := &recorder{TB: t}
		CheckRace(r, c.name, c.out, c.state)
		if r.failed != c.want {
			t.Errorf("%s: failed %v, want %v", c.name, r.failed, c.want)
		}
	}
}

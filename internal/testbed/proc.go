package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CPUTime is the CPU time the threads of process pid have used, summed from
// each thread's schedstat (nanoseconds; /proc/PID/stat counts 10 ms ticks).
// Threads that have exited are not counted; a Go process keeps its threads.
func CPUTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(stats) == 0 {
		tb.Fatalf("no threads of process %d: %v", pid, err)
	}
	var total time.Duration
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // the thread exited meanwhile
		}
		ns, err := strconv.ParseInt(strings.Fields(string(raw))[0], 10, 64)
		if err != nil {
			tb.Fatalf("parse %s: %v", path, err)
		}
		total += time.Duration(ns)
	}
	return total
}

// ProcStatus returns the kB fields of /proc/PID/status (VmRSS, VmHWM, ...).
func ProcStatus(tb testing.TB, pid int) map[string]float64 {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(raw)) {
		key, val, ok := strings.Cut(line, ":")
		if f := strings.Fields(val); ok && len(f) == 2 && f[1] == "kB" {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				out[key] = v
			}
		}
	}
	return out
}

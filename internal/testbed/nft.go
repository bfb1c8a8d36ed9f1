package testbed

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// NftMonitor runs `nft monitor` in netns and returns a function that stops
// it and returns what it printed. It waits for the monitor to listen: a
// change it does not see would pass for no change.
func NftMonitor(t testing.TB, netns string) func() string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", netns, "nft", "monitor")
	var out SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() string {
		if !stopped {
			stopped = true
			time.Sleep(200 * time.Millisecond) // events of the change just made
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return out.String()
	}
	t.Cleanup(func() { stop() })
	// A sentinel the monitor must report: a table of our own, made and
	// dropped; its events are taken out of what the caller sees.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "sentinel") {
		if time.Now().After(deadline) {
			t.Fatalf("nft monitor did not start: %s", out.String())
		}
		Run(t, "ip", "netns", "exec", netns, "nft", "add table inet sentinel; delete table inet sentinel")
		time.Sleep(50 * time.Millisecond)
	}
	skip := len(out.String())
	return func() string {
		all := stop()
		var keep []string
		for _, line := range strings.Split(all[skip:], "\n") {
			if line != "" && !strings.Contains(line, "sentinel") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
}

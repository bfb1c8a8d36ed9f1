package testbed

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// Sentinels are tables of NftMonitor's own, made and dropped in one
// transaction: one the monitor must show before it counts as listening,
// one it must show before it is stopped.
const (
	sentinelPfx   = "sentinel_"
	sentinelStart = sentinelPfx + "start"
	sentinelStop  = sentinelPfx + "stop"
)

// NftMonitor runs `nft monitor` in netns and returns a function that stops
// it and returns what it printed since it listened: the events of each
// transaction, then its "# new generation" line, less the sentinels'
// transactions. A change the monitor does not show would pass for no
// change, so it waits for the monitor to listen, and at stop for it to
// have printed every change made before: nft monitor prints transactions
// in their order, and one made at stop is printed last.
func NftMonitor(t testing.TB, netns string) func() string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", netns, "nft", "monitor")
	var out SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(kill)
	sentinel := func(name string) {
		Run(t, "ip", "netns", "exec", netns, "nft", "add table inet "+name+"; delete table inet "+name)
	}
	// A transaction is printed whole once its generation line is.
	printed := func(name string) bool {
		return strings.Contains(out.String(), "delete table inet "+name+"\n# new generation")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !printed(sentinelStart) {
		if time.Now().After(deadline) {
			t.Fatalf("nft monitor did not start: %s", out.String())
		}
		sentinel(sentinelStart)
		time.Sleep(50 * time.Millisecond)
	}
	return func() string {
		t.Helper()
		if !killed {
			sentinel(sentinelStop)
			deadline := time.Now().Add(30 * time.Second)
			for !printed(sentinelStop) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !printed(sentinelStop) {
				t.Errorf("nft monitor did not print the changes made before its stop within 30s: %s", out.String())
			}
			kill()
		}
		return monitorEvents(out.String())
	}
}

// monitorEvents is what nft monitor printed after the first sentinel's
// transaction, less every sentinel's transaction.
func monitorEvents(all string) string {
	var keep, tx []string
	listening := false
	for _, line := range strings.Split(all, "\n") {
		if line == "" {
			continue
		}
		tx = append(tx, line)
		if !strings.HasPrefix(line, "# new generation") {
			continue
		}
		sentinel := slices.ContainsFunc(tx, func(l string) bool { return strings.Contains(l, sentinelPfx) })
		if listening && !sentinel {
			keep = append(keep, tx...)
		}
		listening = listening || sentinel
		tx = nil
	}
	if listening {
		keep = append(keep, tx...) // a transaction cut by the stop's failure
	}
	return strings.Join(keep, "\n")
}

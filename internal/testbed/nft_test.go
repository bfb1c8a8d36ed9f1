package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNftMonitorStop: a change the monitor takes long to print (a set of
// 20,000 elements, one line each) is in what the stop returns, however
// long that takes, and no sentinel is.
func TestNftMonitorStop(t *testing.T) {
	_, err := exec.LookPath("nft")
	Need(t, err == nil, "nft")
	ns := Netns(t, "vnt-mon-")
	var elems []string
	for i := range 20000 {
		elems = append(elems, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	script := filepath.Join(t.TempDir(), "big.nft")
	body := "add table inet big\nadd set inet big s { type ipv4_addr; }\nadd element inet big s { " +
		strings.Join(elems, ", ") + " }\ndelete table inet big\n"
	if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := NftMonitor(t, ns)
	Run(t, "ip", "netns", "exec", ns, "nft", "-f", script)
	events := stop()
	lines := strings.Split(events, "\n")
	if n := strings.Count(events, "add element inet big s "); n != len(elems) {
		t.Errorf("%d element events, want %d", n, len(elems))
	}
	if len(lines) < 2 || lines[len(lines)-2] != "delete table inet big" || !strings.HasPrefix(lines[len(lines)-1], "# new generation") {
		t.Errorf("the change's last events are missing; the output ends with %q", lines[max(0, len(lines)-2):])
	}
	if strings.Contains(events, sentinelPfx) {
		t.Errorf("a sentinel's events are in the output:\n%s", events)
	}
}

package unixctl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestSandboxVswitchd talks to a real ovs-vswitchd and holds the answers
// against ovs-appctl's.
func TestSandboxVswitchd(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: an OVS sandbox lives in a network namespace")
	box := testbed.StartSandbox(t, repoRoot(t), "")
	ctl := filepath.Join(box.Dir, "ovs-vswitchd.ctl")
	ctx := testContext(t, 10*time.Second)

	version, err := Call(ctx, ctl, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "ovs-vswitchd (Open vSwitch) ") || version != box.Appctl(t, "version") {
		t.Fatalf("version = %q, ovs-appctl says %q", version, box.Appctl(t, "version"))
	}

	box.Vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
	show, err := Call(ctx, ctl, "dpctl/show")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(show, "netdev@ovs-netdev:\n  lookups: hit:") || !strings.Contains(show, "  port 1: br0 (tap)\n") {
		t.Fatalf("dpctl/show =\n%s", show)
	}
	t.Logf("dpctl/show:\n%s", show)

	_, err = Call(ctx, ctl, "version", "extra")
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "at most 0 arguments") {
		t.Fatalf("version extra: err = %v, want a CommandError", err)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

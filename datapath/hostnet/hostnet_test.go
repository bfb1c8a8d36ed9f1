package hostnet

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestInNamespace runs everything in a namespace of its own: what it changes
// (a table, ip_forward) must not reach the machine's own stack.
func TestInNamespace(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates a network namespace")
	ns := testbed.UniqueName("vnt-hn-")
	testbed.Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ctx := context.Background()
	rootForward, err := os.ReadFile(ipForward)
	if err != nil {
		t.Fatal(err)
	}

	err = testbed.InNetns(ns, func() error {
		if _, err := ListNft(ctx, "table", "inet", Table); !errors.Is(err, ErrNotExist) {
			t.Errorf("list of a missing table: %v, want ErrNotExist", err)
		}
		if err := ApplyNft(ctx, "add table inet "+Table+"\nadd chain inet "+Table+" c\n"); err != nil {
			return err
		}
		out, err := ListNft(ctx, "table", "inet", Table)
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), `"name": "c"`) {
			t.Errorf("listed table lacks chain c: %s", out)
		}
		// A failed script changes nothing and says why.
		err = ApplyNft(ctx, "add chain inet "+Table+" d\nadd rule inet "+Table+" nosuchchain accept\n")
		if err == nil || !strings.Contains(err.Error(), "nosuchchain") {
			t.Errorf("bad script: %v, want nft's complaint", err)
		}
		if out, _ := ListNft(ctx, "table", "inet", Table); strings.Contains(string(out), `"name": "d"`) {
			t.Errorf("half of a failed script landed: %s", out)
		}
		return EnableForwarding()
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(testbed.Run(t, "ip", "netns", "exec", ns, "cat", ipForward)); got != "1" {
		t.Errorf("ip_forward in the namespace: %q, want 1", got)
	}
	if now, _ := os.ReadFile(ipForward); string(now) != string(rootForward) {
		t.Errorf("ip_forward of the test's own namespace changed: %q -> %q", rootForward, now)
	}
}

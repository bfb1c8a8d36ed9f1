package linux

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestLinuxConfigureInPlace: turning a running port's configure off and on
// again is an attach of the port as it now is (what the controller does
// for a PUT of configure), and costs it nothing: same link, address kept,
// not one ping lost. Witnesses: ip and ping.
func TestLinuxConfigureInPlace(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := &hostBed{t: t, ns: newNetns(t, "vnt-dhc-"), ctx: ctx}
	n := dhcpNetwork(t)
	p, peer := h.port("p", "dh", "10.81.0.5"), h.port("q", "dh", "10.81.0.6")
	b := h.start(n, p, peer)
	t.Cleanup(func() { b.Close() })
	before := testbed.Run(t, "ip", "-n", p.Netns, "-o", "link", "show", "dev", "eth0")

	ping := exec.Command("ip", "netns", "exec", peer.Netns, "ping", "-n", "-q", "-i", "0.01", "-w", "3", p.IP.String())
	var out strings.Builder
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, off := range []bool{true, false} {
		p.NoConfigure = off
		h.do("attach", func() error { _, err := b.AttachPort(ctx, n, p); return err })
		time.Sleep(500 * time.Millisecond)
	}
	if err := ping.Wait(); err != nil || !strings.Contains(out.String(), " 0% packet loss") {
		t.Errorf("ping across the flips: %v\n%s", err, out.String())
	}
	after := testbed.Run(t, "ip", "-n", p.Netns, "-o", "link", "show", "dev", "eth0")
	if strings.SplitN(after, ":", 2)[0] != strings.SplitN(before, ":", 2)[0] {
		t.Errorf("the flips made a new link:\n%s\nwas\n%s", after, before)
	}
	if got := testbed.Run(t, "ip", "-n", p.Netns, "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(got, " 10.81.0.5/24 ") {
		t.Errorf("address after the flips: %q", got)
	}
}

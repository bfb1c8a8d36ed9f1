package link

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestSeal: links up with IPv6 link-local addresses, as an older version
// left them, are sealed in place — a port's link (Seal) and a gateway's
// (SealGateway) — in a namespace of the test's own; sealing twice changes
// nothing more.
func TestSeal(t *testing.T) {
	ns := testbed.Netns(t, "vnt-seal-")
	testbed.Run(t, "ip", "-n", ns, "link", "add", "vnt-port", "type", "veth", "peer", "name", "vnt-gw")
	testbed.Run(t, "ip", "-n", ns, "link", "set", "vnt-port", "up")
	testbed.Run(t, "ip", "-n", ns, "link", "set", "vnt-gw", "up")
	if out := testbed.Run(t, "ip", "-n", ns, "-6", "addr", "show", "dev", "vnt-port"); !strings.Contains(out, "fe80") {
		t.Fatalf("no link-local address to start from: %s", out)
	}
	err := testbed.InNetns(ns, func() error {
		for range 2 {
			l, err := netlink.LinkByName("vnt-port")
			if err != nil {
				return err
			}
			if err := Seal(l); err != nil {
				return err
			}
			if err := SealGateway("vnt-gw"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"net.ipv6.conf.vnt-port.disable_ipv6": "1",
		"net.ipv4.conf.vnt-port.arp_ignore":   "8",
		"net.ipv4.conf.vnt-port.rp_filter":    "1",
		"net.ipv6.conf.vnt-gw.disable_ipv6":   "1",
		"net.ipv4.conf.vnt-gw.arp_ignore":     "1",
		"net.ipv4.conf.vnt-gw.arp_announce":   "2",
	} {
		if got := strings.TrimSpace(testbed.Run(t, "ip", "netns", "exec", ns, "sysctl", "-n", key)); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	for _, dev := range []string{"vnt-port", "vnt-gw"} {
		if out := strings.TrimSpace(testbed.Run(t, "ip", "-n", ns, "-6", "addr", "show", "dev", dev)); out != "" {
			t.Errorf("%s keeps IPv6 addresses: %s", dev, out)
		}
	}
	for dev, want := range map[string]string{"vnt-port": "group 30318 ", "vnt-gw": "group default "} {
		if out := testbed.Run(t, "ip", "-n", ns, "link", "show", "dev", dev); !strings.Contains(out, want) {
			t.Errorf("%s: want %q in %s", dev, want, out)
		}
	}
}

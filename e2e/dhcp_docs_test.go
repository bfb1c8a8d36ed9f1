package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDHCPDocsExample runs docs/DHCP.md's example ("The network and the
// port") as written, with vnetctl, on each backend — but for the
// namespace's name, made unique — and a real client between its steps:
// busybox udhcpc leases what the example says, sees the new DNS server
// when it renews, and gets nothing once DHCP is off.
func TestDHCPDocsExample(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			needStaticBusybox(t)
			hostNS := newNetns(t, "vnt-dd-")
			args, _ := bc.setup(t, hostNS)
			sock := filepath.Join(t.TempDir(), "api.sock")
			startSocketDaemon(t, hostNS, sock, args...)
			cli := newVnetctl(t, "VNETCTL_SERVER=unix:"+sock)
			web1 := newNetns(t, "vnt-ddw-")

			cli.ok("network", "create", "lab", "--subnet", "10.30.0.0/24", "--dns", "10.30.0.53,9.9.9.9", "--domain", "lab.example")
			cli.ok("port", "create", "web1", "--network", "lab", "--netns", web1, "--configure=false")
			ok, events, log := runUdhcpc(t, web1, "-f", "-q", "-n", "-t", "3", "-T", "1")
			if !ok {
				t.Fatalf("udhcpc got no lease; events %v; log:\n%s", events, log)
			}
			got := lastEvent(t, events, "bound").Fields
			want := map[string]string{"ip": "10.30.0.2", "mask": "24", "router": "10.30.0.1", "dns": "10.30.0.53 9.9.9.9",
				"domain": "lab.example", "mtu": "1500"}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("bound: %s=%q, want %q (all: %v)", k, got[k], v, got)
				}
			}

			if out := cli.ok("network", "set", "lab", "--dns", "10.30.0.54"); out != "network lab changed\n" {
				t.Errorf("network set --dns: %q", out)
			}
			ok, events, log = runUdhcpc(t, web1, "-f", "-q", "-n", "-t", "3", "-T", "1")
			if dns := lastEvent(t, events, "bound").Fields["dns"]; !ok || dns != "10.30.0.54" {
				t.Errorf("after network set --dns: lease %v, dns %q, want 10.30.0.54; log:\n%s", ok, dns, log)
			}

			if out := cli.ok("network", "set", "lab", "--dhcp=false"); out != "network lab changed\n" {
				t.Errorf("network set --dhcp=false: %q", out)
			}
			c := startUdhcpc(t, web1, "-f", "-q", "-n", "-t", "2", "-T", "1")
			if log, ok := c.wait(t, 30*time.Second); ok || strings.Contains(log, "lease of") {
				t.Errorf("udhcpc leased with DHCP off:\n%s", log)
			}
		})
	}
}

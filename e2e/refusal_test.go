package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestForeignTapRefused is issue 19's sixth Must, on each backend: a tap
// port whose device another tool made (`ip tuntap add`), or on OVS whose
// OVS port another tool made, is refused with 409 and a message that
// starts with its kind; what the other tool made stays; the refusal leaves
// no record and is no incomplete rollback in the daemon's log; once the
// device is gone the same PUT makes the port. Adopt refuses, leaving the
// device as it was, a tap in another tool's bridge and, on OVS, the
// switch's own device (the netdev datapath's bridge device is a tap).
func TestForeignTapRefused(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-ftap-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.73.0.0/24"}`, http.StatusCreated, nil)

			testbed.Run(t, "ip", "-n", hostNS, "tuntap", "add", "dev", "vnt-ftap0", "mode", "tap")
			spec := `{"network":"blue","type":"tap","ifname":"vnt-ftap0"}`
			conflict(t, d, "vm", spec)
			if out := testbed.Run(t, "ip", "-n", hostNS, "-d", "link", "show", "vnt-ftap0"); !strings.Contains(out, "tun type tap") || strings.Contains(out, "ovs-vnet") {
				t.Fatalf("the foreign tap after the refusal: %s", out)
			}
			testbed.Run(t, "ip", "-n", hostNS, "link", "del", "vnt-ftap0")
			d.must("PUT", "/v1/ports/vm", spec, http.StatusCreated, nil)

			testbed.Run(t, "ip", "-n", hostNS, "link", "add", "vnt-fbr0", "type", "bridge")
			testbed.Run(t, "ip", "-n", hostNS, "tuntap", "add", "dev", "vnt-ftap2", "mode", "tap")
			testbed.Run(t, "ip", "-n", hostNS, "link", "set", "vnt-ftap2", "master", "vnt-fbr0", "mtu", "1234")
			adoptRefused(t, d, hostNS, "vnt-ftap2")
			if box != nil {
				adoptRefused(t, d, hostNS, "br-vnet")
			}

			if box == nil {
				return
			}
			// An OVS port of the tap's name with no device yet: the
			// attach makes the tap, AddPort refuses the OVS port, and the
			// rollback takes the tap and leaves the OVS port.
			box.Vsctl(t, "add-port", "br-vnet", "vnt-ftap1")
			conflict(t, d, "vm1", `{"network":"blue","type":"tap","ifname":"vnt-ftap1"}`)
			if ports := box.Vsctl(t, "list-ports", "br-vnet"); !strings.Contains(ports, "vnt-ftap1") {
				t.Fatalf("the foreign OVS port is gone after the refusal: %s", ports)
			}
			if exec.Command("ip", "-n", hostNS, "link", "show", "vnt-ftap1").Run() == nil {
				t.Fatal("the refused attach's tap is left behind")
			}
		})
	}
}

// adoptRefused checks that a port adopting the device dev is refused
// (conflict) and that the device is left exactly as it was: its link
// (MTU, alias, master, group, flags) and the sysctls link.Seal sets.
func adoptRefused(t *testing.T, d *daemon, hostNS, dev string) {
	t.Helper()
	state := func() string {
		return testbed.Run(t, "ip", "-n", hostNS, "-j", "link", "show", "dev", dev) +
			testbed.Run(t, "ip", "netns", "exec", hostNS, "sysctl", "-n", "net.ipv4.conf."+dev+".arp_ignore",
				"net.ipv4.conf."+dev+".rp_filter")
	}
	before := state()
	conflict(t, d, "adopter", `{"network":"blue","type":"tap","adopt":true,"ifname":"`+dev+`"}`)
	if after := state(); after != before {
		t.Fatalf("adopting %s was refused but changed it:\nbefore %s\nafter  %s", dev, before, after)
	}
}

// conflict PUTs port name with spec on d, which must refuse it: 409, the
// kind first and once, no record, nothing logged at ERROR.
func conflict(t *testing.T, d *daemon, name, spec string) {
	t.Helper()
	code, body := d.do("PUT", "/v1/ports/"+name, spec)
	var answer struct{ Error string }
	if err := json.Unmarshal(body, &answer); err != nil || code != http.StatusConflict ||
		!strings.HasPrefix(answer.Error, "conflict: ") || strings.Count(answer.Error, "conflict") != 1 {
		t.Fatalf("PUT %s: %d %s, want 409 and one \"conflict: \" first", spec, code, body)
	}
	d.must("GET", "/v1/ports/"+name, nil, http.StatusNotFound, nil)
	if log := d.log.String(); strings.Contains(log, "rollback incomplete") || strings.Contains(log, "level=ERROR") {
		t.Fatalf("the refusal is logged as an error:\n%s", log)
	}
}

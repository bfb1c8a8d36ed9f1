package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestForeignTapRefused is issue 19's sixth Must, on each backend: a tap
// port whose device another tool made (`ip tuntap add`) is refused with 409
// and a message that starts with its kind; the device stays; the refusal
// leaves no record and is no incomplete rollback in the daemon's log; once
// the device is gone the same PUT makes the port.
func TestForeignTapRefused(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-ftap-")
			args, _ := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.73.0.0/24"}`, http.StatusCreated, nil)
			testbed.Run(t, "ip", "-n", hostNS, "tuntap", "add", "dev", "vnt-ftap0", "mode", "tap")
			spec := `{"network":"blue","type":"tap","ifname":"vnt-ftap0"}`

			code, body := d.do("PUT", "/v1/ports/vm", spec)
			var answer struct{ Error string }
			if err := json.Unmarshal(body, &answer); err != nil || code != http.StatusConflict ||
				!strings.HasPrefix(answer.Error, "conflict: ") || strings.Count(answer.Error, "conflict") != 1 {
				t.Fatalf("PUT over a foreign tap: %d %s, want 409 and one \"conflict: \" first", code, body)
			}
			if out := testbed.Run(t, "ip", "-n", hostNS, "-d", "link", "show", "vnt-ftap0"); !strings.Contains(out, "tun type tap") || strings.Contains(out, "ovs-vnet") {
				t.Fatalf("the foreign tap after the refusal: %s", out)
			}
			d.must("GET", "/v1/ports/vm", nil, http.StatusNotFound, nil)
			if log := d.log.String(); strings.Contains(log, "rollback incomplete") || strings.Contains(log, "level=ERROR") {
				t.Fatalf("the refusal is logged as an error:\n%s", log)
			}

			testbed.Run(t, "ip", "-n", hostNS, "link", "del", "vnt-ftap0")
			d.must("PUT", "/v1/ports/vm", spec, http.StatusCreated, nil)
		})
	}
}

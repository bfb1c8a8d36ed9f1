package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestProcessNetnsAcrossRestart: a port whose namespace is a process's
// path (/proc/PID/ns/net) is not made again, after a restart, in the
// namespace the path has come to name (as for a PID reused by another
// container): the process here leaves its namespace for a new one
// (`unshare -n`) while the daemon is down. The port shows down,
// netns_gone; the new namespace gets no interface, and the old one keeps
// the port's (docs/OPERATIONS.md, "Ports changed under the daemon").
func TestProcessNetnsAcrossRestart(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, _ := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.67.0.0/24"}`, 201, nil)
			nsY := newNetns(t, "vnt-y-")
			proc := testbed.StartNetnsProcess(t, nsY, "read x; exec unshare -n sleep 600")
			path := proc.Path
			d.must("PUT", "/v1/ports/pq", map[string]string{"network": "blue", "netns": path, "ifname": "vq0", "ip": "10.67.0.10"}, 201, nil)
			testbed.Run(t, "ip", "-n", nsY, "link", "show", "vq0")

			d.stop()
			if _, err := proc.Move.Write([]byte("go\n")); err != nil {
				t.Fatal(err)
			}
			proc.WaitIn(t, nsY, false)
			d.start()
			waitFor(t, "port pq down, netns_gone", func() bool {
				var p portView
				d.must("GET", "/v1/ports/pq", nil, 200, &p)
				return p.Status == v1.PortDown && p.StatusReason == "netns_gone"
			})
			out, err := exec.Command("nsenter", "--net="+path, "ip", "-o", "link", "show").CombinedOutput()
			if err != nil {
				t.Fatalf("ip link in the process's new namespace: %v\n%s", err, out)
			}
			if strings.Contains(string(out), "vq0") {
				t.Fatalf("the port's interface was made in a namespace it was never in:\n%s", out)
			}
			testbed.Run(t, "ip", "-n", nsY, "link", "show", "vq0")
			d.must("PUT", "/v1/ports/pq", map[string]string{"network": "blue", "netns": path, "ifname": "vq0", "ip": "10.67.0.10"}, 400, nil)
			d.must("DELETE", "/v1/ports/pq", nil, 204, nil)
			d.stop()
		})
	}
}

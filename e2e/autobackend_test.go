package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestBackendAuto is the README's promise about --backend auto
// (datapath/backend/backend.go): OVS when the OVSDB endpoint answers, Linux
// when it does not — a socket whose ovsdb-server is stopped (it accepts and
// never answers) or a path with nothing there. The choice is witnessed by
// GET /v1/info, by the host (an OVS port, or a Linux bridge holding the
// port's host link) and by a ping between two ports. The stopped
// ovsdb-server, resumed, holds nothing of the daemon's: the probe that gave
// up on it left no bridge behind.
func TestBackendAuto(t *testing.T) {
	for _, c := range []struct {
		name string
		want string
		// ovsdb returns the --ovsdb endpoint, the sandbox behind it (nil
		// for none) and a resume of a stopped ovsdb-server (nil if it runs).
		ovsdb func(t *testing.T, hostNS string) (endpoint string, box *testbed.Sandbox, resume func())
	}{
		{"ovsdb-answers", "ovs", func(t *testing.T, hostNS string) (string, *testbed.Sandbox, func()) {
			box := testbed.StartSandbox(t, repoRoot, hostNS)
			return "unix:" + box.DBSock, box, nil
		}},
		{"ovsdb-stopped", "linux", func(t *testing.T, hostNS string) (string, *testbed.Sandbox, func()) {
			box := testbed.StartSandbox(t, repoRoot, hostNS)
			return "unix:" + box.DBSock, box, stopProcess(t, box, "ovsdb-server")
		}},
		{"nothing-there", "linux", func(t *testing.T, hostNS string) (string, *testbed.Sandbox, func()) {
			return "unix:" + filepath.Join(t.TempDir(), "db.sock"), nil, nil
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			endpoint, box, resume := c.ovsdb(t, hostNS)
			d := startDaemon(t, hostNS, "--backend", "auto", "--ovsdb", endpoint, "--bridge", "br-vnet")

			var info struct{ Backend string }
			d.must("GET", "/v1/info", nil, 200, &info)
			if info.Backend != c.want {
				t.Fatalf("GET /v1/info: backend %q, want %q", info.Backend, c.want)
			}
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.77.0.0/24"}`, 201, nil)
			nsA, nsB := newNetns(t, "vnt-a-"), newNetns(t, "vnt-b-")
			var a, b portView
			d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": nsA, "ip": "10.77.0.11"}, 201, &a)
			d.must("PUT", "/v1/ports/b", map[string]string{"network": "blue", "netns": nsB, "ip": "10.77.0.12"}, 201, &b)

			bridge := model.BridgeName("br-vnet", "blue")
			linuxBridge := strings.TrimSpace(testbed.Run(t, "ip", "-n", hostNS, "-br", "link", "show", "type", "bridge"))
			switch c.want {
			case "ovs":
				if ports := bridgePorts(t, box, hostNS); !slices.Contains(ports, a.HostIfname) || !slices.Contains(ports, b.HostIfname) {
					t.Errorf("OVS br-vnet ports %v, want %s and %s", ports, a.HostIfname, b.HostIfname)
				}
				if strings.Contains(linuxBridge, bridge) {
					t.Errorf("a Linux bridge %s exists beside OVS:\n%s", bridge, linuxBridge)
				}
			case "linux":
				for _, p := range []portView{a, b} {
					if out := testbed.Run(t, "ip", "-n", hostNS, "-d", "link", "show", p.HostIfname); !strings.Contains(out, "master "+bridge+" ") {
						t.Errorf("host link %s is not on Linux bridge %s:\n%s", p.HostIfname, bridge, out)
					}
				}
			}
			ping(t, nsA, "10.77.0.12", true)
			ping(t, nsB, "10.77.0.11", true)
			if resume != nil {
				resume()
				if bridges := box.Vsctl(t, "list-br"); bridges != "" {
					t.Errorf("the resumed ovsdb-server has bridges %q, want none", bridges)
				}
			}
		})
	}
}

// stopProcess SIGSTOPs the sandbox's daemon name (its pid file, checked
// against the process's name so that no other process is signalled) and
// returns its resume, also run at cleanup, before the sandbox is taken down.
func stopProcess(t *testing.T, box *testbed.Sandbox, name string) (resume func()) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(box.Dir, name+".pid"))
	if err != nil {
		t.Fatalf("read %s pid: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("%s pid file %q: %v", name, raw, err)
	}
	if comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm")); err != nil || strings.TrimSpace(string(comm)) != name {
		t.Fatalf("pid %d is %q (%v), not %s", pid, comm, err, name)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", name, err)
	}
	resume = func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
	t.Cleanup(resume)
	return resume
}

// Package testbed holds what the integration tests share: private OVS
// sandboxes (hack/ovs-sandbox.sh), running code inside a network
// namespace, and real traffic between namespaces (probe.go, stream.go,
// and the security groups' policy matrix, matrix.go). It is imported by
// tests only.
package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/nsenter"
)

// UniqueName returns prefix followed by random hex, for namespaces and bridges.
func UniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Sandbox is an OVS started by hack/ovs-sandbox.sh in a namespace of its own.
type Sandbox struct {
	Dir    string
	Netns  string
	DBSock string
	script string
}

// StartSandbox starts a sandbox inside the named namespace (created if it
// does not exist; "" for a new one of its own) and stops it at cleanup. opts
// go to `ovs-sandbox.sh up` (e.g. "--no-tso").
func StartSandbox(t testing.TB, repoRoot, netns string, opts ...string) *Sandbox {
	t.Helper()
	Need(t, os.Geteuid() == 0, "root: an OVS sandbox lives in a network namespace")
	if netns == "" {
		netns = UniqueName("vnt-ovs-")
	}
	s := &Sandbox{Dir: t.TempDir(), Netns: netns, script: filepath.Join(repoRoot, "hack", "ovs-sandbox.sh")}
	s.DBSock = filepath.Join(s.Dir, "db.sock")
	t.Cleanup(func() {
		if out, err := exec.Command(s.script, "down", s.Dir).CombinedOutput(); err != nil {
			t.Errorf("sandbox down: %v\n%s", err, out)
		}
	})
	Run(t, s.script, append([]string{"up", s.Dir, "--netns", s.Netns}, opts...)...)
	return s
}

// RestartVswitchd restarts ovs-vswitchd alone; its flows are lost.
func (s *Sandbox) RestartVswitchd(t testing.TB) {
	t.Helper()
	Run(t, s.script, "restart-vswitchd", s.Dir)
}

// Vsctl runs ovs-vsctl against the sandbox: an independent witness.
func (s *Sandbox) Vsctl(t testing.TB, args ...string) string {
	t.Helper()
	return strings.TrimSpace(Run(t, "ovs-vsctl", append([]string{"--db=unix:" + s.DBSock, "--timeout=10"}, args...)...))
}

// Ofctl runs ovs-ofctl (OpenFlow 1.3) on the bridge through its management socket.
func (s *Sandbox) Ofctl(t testing.TB, cmd, bridge string, args ...string) string {
	t.Helper()
	return Run(t, "ovs-ofctl", append([]string{"-O", "OpenFlow13", cmd, s.Mgmt(bridge)}, args...)...)
}

// Appctl runs ovs-appctl against the sandbox's ovs-vswitchd, e.g.
// ofproto/trace: the independent witness of what a packet does.
func (s *Sandbox) Appctl(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, "ovs-appctl", append([]string{"-t", filepath.Join(s.Dir, "ovs-vswitchd.ctl")}, args...)...)
}

// Mgmt is the OpenFlow management socket of a bridge, as a target.
func (s *Sandbox) Mgmt(bridge string) string {
	return "unix:" + filepath.Join(s.Dir, bridge+".mgmt")
}

// InNetns runs f in the namespace at path (a name is looked up under
// /var/run/netns), as nsenter.Run does: sockets made in f stay in that
// namespace, and f must not call t.FailNow.
func InNetns(path string, f func() error) error {
	if !strings.HasPrefix(path, "/") {
		path = "/var/run/netns/" + path
	}
	return nsenter.RunAt(path, f)
}

// Netns makes a network namespace named prefix plus a unique suffix with
// `ip netns add`, deleted at cleanup, and returns its name.
func Netns(tb testing.TB, prefix string) string {
	tb.Helper()
	Need(tb, os.Geteuid() == 0, "root: the test creates a network namespace")
	name := UniqueName(prefix)
	Run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return name
}

package e2e

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/backend"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// Issue 16, Musts 5 and 7: a daemon never deletes the dataplane because its
// state is empty, missing or damaged, and never shares a namespace with
// another daemon.

// dataplane is what a test checks is left as it was: the host links of
// ports and networks (their ovs-vnet: aliases), and on OVS the bridge's
// ports and ovs-vnet's flows.
type dataplane struct {
	links, ports, flows []string
}

func readDataplane(t *testing.T, hostNS string, box *testbed.Sandbox) dataplane {
	t.Helper()
	var dp dataplane
	for _, l := range linksIn(t, hostNS) {
		alias := l.Attrs().Alias
		if strings.HasPrefix(alias, datapath.PortAlias("")) || strings.HasPrefix(alias, datapath.BridgeAlias("")) {
			dp.links = append(dp.links, l.Attrs().Name+" "+alias)
		}
	}
	slices.Sort(dp.links)
	if box != nil {
		dp.ports = bridgePorts(t, box, hostNS)
		slices.Sort(dp.ports)
		dp.flows = slices.Sorted(maps.Keys(ourFlows(t, box)))
	}
	return dp
}

func (dp dataplane) String() string {
	return fmt.Sprintf("links %v, OVS ports %v, %d flows", dp.links, dp.ports, len(dp.flows))
}

// Exit statuses of refusals (cmd/ovs-vnet/main.go).
const (
	exitNeedsOperator = 78 // empty or damaged state
	exitTaken         = 75 // another daemon has the namespace or the bridge
)

// runRefused runs the daemon in hostNS on stateDir, expects it to exit
// with status within a minute, and returns what it printed. The refusal
// must be a message, not a crash.
func runRefused(t *testing.T, hostNS, stateDir string, status int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", hostNS, daemonBin, "--state-dir", stateDir}, args...)...)
	raw, err := cmd.CombinedOutput()
	out := string(raw)
	testbed.CheckRace(t, "daemon", out, cmd.ProcessState)
	var exit *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() != status {
		t.Fatalf("daemon on %s: want a refusal (exit status %d), got %v:\n%s", stateDir, status, err, out)
	}
	if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
		t.Fatalf("daemon on %s crashed rather than refused:\n%s", stateDir, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	t.Logf("refused: %s", lines[len(lines)-1])
	return out
}

func wantSaid(t *testing.T, out string, phrases ...string) {
	t.Helper()
	for _, p := range phrases {
		if !strings.Contains(out, p) {
			t.Fatalf("the refusal does not say %q:\n%s", p, out)
		}
	}
}

// TestStateSafety: a daemon with a network and two ports that forward is
// stopped; a start on an empty state dir, on an empty state.db, on a
// missing state dir and on a damaged state.db is each refused with a clear
// message, the dataplane left as it was and still forwarding; what was
// missing is not left behind. The intact state starts as before, and a
// start on an empty state with --reset-dataplane deletes the dataplane.
func TestStateSafety(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-ss-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.71.0.0/24"}`, http.StatusCreated, nil)
			nsA, nsB := newNetns(t, "vnt-ssa-"), newNetns(t, "vnt-ssb-")
			d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": nsA}, http.StatusCreated, nil)
			d.must("PUT", "/v1/ports/b", map[string]string{"network": "blue", "netns": nsB, "ip": "10.71.0.20"}, http.StatusCreated, nil)
			ping(t, nsA, "10.71.0.20", true)
			d.stop()
			before := readDataplane(t, hostNS, box)
			if len(before.links) == 0 {
				t.Fatalf("no links of ours after the first run: %s", before)
			}
			intact := func(what string) {
				t.Helper()
				if after := readDataplane(t, hostNS, box); after.String() != before.String() ||
					!slices.Equal(after.flows, before.flows) || !slices.Equal(after.links, before.links) {
					t.Fatalf("%s changed the dataplane:\nbefore %s\nafter  %s", what, before, after)
				}
				ping(t, nsA, "10.71.0.20", true)
			}

			out := runRefused(t, hostNS, t.TempDir(), exitNeedsOperator, args...)
			wantSaid(t, out, "refusing to start", "holds no network", "ports a, b;", "--reset-dataplane")
			intact("a start on an empty state dir")

			emptyDir := t.TempDir()
			empty, err := store.Open(filepath.Join(emptyDir, "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			empty.Close()
			out = runRefused(t, hostNS, emptyDir, exitNeedsOperator, args...)
			wantSaid(t, out, "refusing to start on the state database "+filepath.Join(emptyDir, "state.db")+": the state store holds no network")
			if _, err := os.Stat(filepath.Join(emptyDir, "state.db")); err != nil {
				t.Fatalf("the refused start removed the state.db it found: %v", err)
			}
			intact("a start on an empty state.db")

			missing := filepath.Join(t.TempDir(), "unmounted")
			out = runRefused(t, hostNS, missing, exitNeedsOperator, args...)
			wantSaid(t, out, "refusing to start", "the state dir was missing", "--reset-dataplane")
			if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused start left %s behind: %v", missing, err)
			}
			intact("a start on a missing state dir")

			damagedDir := t.TempDir()
			raw, err := os.ReadFile(filepath.Join(d.stateDir, "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			damagedDB := filepath.Join(damagedDir, "state.db")
			if err := os.WriteFile(damagedDB, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			testbed.DamageBolt(t, damagedDB)
			out = runRefused(t, hostNS, damagedDir, exitNeedsOperator, args...)
			wantSaid(t, out, "state database "+damagedDB+" is damaged", "restore it from a backup or move it away")
			intact("a start on a damaged state.db")

			// The intact state still starts, and keeps everything.
			d.start()
			ping(t, nsA, "10.71.0.20", true)
			d.stop()
			intact("a restart on the intact state")

			wipe := startDaemon(t, hostNS, append(slices.Clone(args), "--reset-dataplane")...)
			wipe.stop()
			if after := readDataplane(t, hostNS, box); len(after.links) > 0 || len(after.ports) > 0 {
				t.Fatalf("--reset-dataplane on an empty state left %s", after)
			}
			ping(t, nsA, "10.71.0.20", false)
		})
	}
}

// TestOneDaemonPerNamespace: a second daemon in a namespace where one runs
// is refused at start, naming the first, whatever its state dir and
// bridge; the first keeps its ports. Two daemons in two namespaces, on two
// bridges, each keep forwarding while both run.
func TestOneDaemonPerNamespace(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			type host struct {
				ns     string
				d      *daemon
				args   []string
				box    *testbed.Sandbox
				bridge string
				nsA    string
				ip     string
			}
			hosts := make([]*host, 2)
			for i := range hosts {
				h := &host{ns: newNetns(t, "vnt-one-")}
				h.args, h.box = bc.setup(t, h.ns)
				// Two bridges: a later flag wins.
				h.bridge = fmt.Sprintf("%s%d", map[bool]string{true: "br-v", false: "vnb"}[h.box != nil], i)
				h.args = append(h.args, "--bridge", h.bridge)
				h.d = startDaemon(t, h.ns, h.args...)
				h.d.must("PUT", "/v1/networks/blue", `{"subnet":"10.72.0.0/24"}`, http.StatusCreated, nil)
				h.nsA = newNetns(t, "vnt-onea-")
				nsB := newNetns(t, "vnt-oneb-")
				h.d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": h.nsA}, http.StatusCreated, nil)
				h.d.must("PUT", "/v1/ports/b", map[string]string{"network": "blue", "netns": nsB, "ip": "10.72.0.20"}, http.StatusCreated, nil)
				hosts[i] = h
			}
			for _, h := range hosts {
				ping(t, h.nsA, "10.72.0.20", true)
			}

			// A second daemon beside the first: its own state dir, the same
			// bridge, then another bridge; the API port stays free for it.
			first := hosts[0]
			for _, bridge := range []string{first.bridge, "vnother"} {
				out := runRefused(t, first.ns, t.TempDir(), exitTaken, append(slices.Clone(first.args), "--bridge", bridge, "--listen", "127.0.0.1:9477")...)
				wantSaid(t, out, "another ovs-vnet daemon runs in this network namespace",
					fmt.Sprintf("pid %d", first.d.cmd.Process.Pid), "--bridge "+first.bridge, "--state-dir "+first.d.stateDir)
			}
			// The lock is root's alone: another user can neither take it
			// (and keep the daemon from starting) nor write a false
			// holder into its file, nor make a lock file of its own.
			lock := lockFile(t, first.ns)
			if raw, err := os.ReadFile(lock); err != nil || !strings.Contains(string(raw), fmt.Sprintf(`"pid":%d`, first.d.cmd.Process.Pid)) {
				t.Fatalf("lock file %s: %q, %v: want the first daemon's identity", lock, raw, err)
			}
			for _, script := range []string{`flock --nonblock --conflict-exit-code 99 "$0" true`, `echo forged >"$0"`, `: >"$(dirname "$0")/mine.lock"`} {
				out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script, lock).CombinedOutput()
				if err == nil || !strings.Contains(string(out), "Permission denied") {
					t.Fatalf("another user's %s on the lock: %v, %s; want permission denied", script, err, out)
				}
			}
			if first.box != nil {
				// Another namespace, the same ovsdb and bridge: the
				// bridge's OVSDB lock refuses it, and its record names
				// the first.
				out := runRefused(t, newNetns(t, "vnt-onex-"), t.TempDir(), exitTaken, first.args...)
				wantSaid(t, out, "bridge "+first.bridge+" is taken by another ovs-vnet daemon",
					fmt.Sprintf("pid %d", first.d.cmd.Process.Pid), "--state-dir "+first.d.stateDir)
			}
			var ports struct{ Ports []portView }
			first.d.must("GET", "/v1/ports", nil, http.StatusOK, &ports)
			if len(ports.Ports) != 2 {
				t.Fatalf("the first daemon lists %d ports after the refusals, want 2", len(ports.Ports))
			}
			for _, h := range hosts {
				ping(t, h.nsA, "10.72.0.20", true)
			}
		})
	}
}

// lockFile is the namespace lock's file of the network namespace named ns
// (datapath/backend.Lock): named after the namespace's device and inode.
func lockFile(t *testing.T, ns string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/var/run/netns/"+ns, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s/netns-%d-%d.lock", backend.LockDir, st.Dev, st.Ino)
}

// TestBridgeLockLost: a daemon whose OVS bridge lock another OVSDB client
// takes stops at once, with status 75 and a message saying why, rather
// than drive the bridge beside the lock's new holder; the ports keep
// forwarding, and once the lock is free again the daemon starts as
// before. OVS only: the Linux backend has no bridge lock, and its
// namespace lock (flock) cannot be taken from a living holder.
func TestBridgeLockLost(t *testing.T) {
	for _, bc := range backendKinds() {
		if bc.kind != "ovs" {
			continue
		}
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-ll-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.73.0.0/24"}`, http.StatusCreated, nil)
			nsA, nsB := newNetns(t, "vnt-lla-"), newNetns(t, "vnt-llb-")
			d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": nsA}, http.StatusCreated, nil)
			d.must("PUT", "/v1/ports/b", map[string]string{"network": "blue", "netns": nsB, "ip": "10.73.0.20"}, http.StatusCreated, nil)
			ping(t, nsA, "10.73.0.20", true)

			thief := exec.Command("ovsdb-client", "steal", "unix:"+box.DBSock, "ovs_vnet_"+hex.EncodeToString([]byte("br-vnet")))
			if err := thief.Start(); err != nil {
				t.Fatal(err)
			}
			stopThief := func() {
				if thief.Process != nil {
					_ = thief.Process.Kill()
					_ = thief.Wait()
					thief.Process = nil
				}
			}
			t.Cleanup(stopThief)
			exited := make(chan error, 1)
			go func() { exited <- d.cmd.Wait() }()
			select {
			case err := <-exited:
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != exitTaken {
					t.Fatalf("daemon exit after its bridge lock was stolen: %v, want status %d\n%s", err, exitTaken, d.log)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the daemon kept running after its bridge lock was stolen:\n%s", d.log)
			}
			d.ended()
			wantSaid(t, d.log.String(), "bridge br-vnet: lost its OVSDB lock", "another ovsdb client stole it", "stopping, not to drive the bridge beside its new holder")
			ping(t, nsA, "10.73.0.20", true)

			stopThief()
			d.start()
			var ports struct{ Ports []portView }
			d.must("GET", "/v1/ports", nil, http.StatusOK, &ports)
			if len(ports.Ports) != 2 {
				t.Fatalf("after the restart the daemon lists %d ports, want 2", len(ports.Ports))
			}
			ping(t, nsA, "10.73.0.20", true)
			d.stop()
		})
	}
}

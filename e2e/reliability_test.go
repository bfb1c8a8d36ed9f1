package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// Reliability (issue 6, Must 1-2): the dataplane must not notice the daemon
// restarting, and the daemon must ride out ovs-vswitchd and ovsdb-server
// restarting under it. Each test keeps pings at 10 ms intervals running through
// the event and reads every sequence number back, so one lost packet fails it.

// relNet is the topology every test here builds: two ports of blue and one of
// red, with a router between the networks.
type relNet struct {
	d       *daemon
	box     *testbed.Sandbox
	hostNS  string
	nsA     string // blue, 10.81.0.11
	nsB     string // blue, 10.81.0.12
	nsC     string // red,  10.82.0.11
	peerIP  string // b, seen from a
	routeIP string // c, across the router
}

func newRelNet(t *testing.T, bc backendCase) *relNet {
	t.Helper()
	r := &relNet{hostNS: newNetns(t, "vnt-host-"), peerIP: "10.81.0.12", routeIP: "10.82.0.11"}
	var args []string
	args, r.box = bc.setup(t, r.hostNS)
	r.d = startDaemon(t, r.hostNS, args...)
	r.d.must("PUT", "/v1/networks/blue", `{"subnet":"10.81.0.0/24"}`, 201, nil)
	r.d.must("PUT", "/v1/networks/red", `{"subnet":"10.82.0.0/24"}`, 201, nil)
	r.d.must("PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201, nil)
	r.nsA, r.nsB, r.nsC = newNetns(t, "vnt-a-"), newNetns(t, "vnt-b-"), newNetns(t, "vnt-c-")
	r.d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": r.nsA, "ip": "10.81.0.11"}, 201, nil)
	r.d.must("PUT", "/v1/ports/b", map[string]string{"network": "blue", "netns": r.nsB, "ip": r.peerIP}, 201, nil)
	r.d.must("PUT", "/v1/ports/c", map[string]string{"network": "red", "netns": r.nsC, "ip": r.routeIP}, 201, nil)
	// Neighbour entries resolved before the clock starts: the first packet
	// of a cold path waits for ARP, which is not the daemon's doing.
	ping(t, r.nsA, r.peerIP, true)
	ping(t, r.nsA, r.routeIP, true)
	return r
}

// TestZeroLoss restarts the daemon under running traffic, by SIGKILL and by
// SIGTERM: not one packet may be lost, and on OVS the restarted daemon must
// adopt the flows it finds (durations keep growing, no flow or group mod).
func TestZeroLoss(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			r := newRelNet(t, bc)
			var snoop *snoopWatch
			if bc.kind == "ovs" {
				// The switch's witness of what the restarted daemons send.
				snoop = snoopController(t, r.box, "br-vnet", r.d)
			}
			for _, how := range []string{"SIGKILL", "SIGTERM"} {
				flowsBefore := ourFlows(t, r.box)
				pings := []*pinger{startPing(t, r.nsA, r.peerIP), startPing(t, r.nsA, r.routeIP)}
				// Some traffic before the restart, so that a loss at the
				// moment the daemon goes away would show as a gap.
				time.Sleep(500 * time.Millisecond)
				start := time.Now()
				if how == "SIGKILL" {
					r.d.kill()
				} else {
					r.d.stop()
				}
				r.d.start()
				restart := time.Since(start)
				time.Sleep(time.Second) // and after it, for the same reason
				for _, p := range pings {
					res := p.stop(t)
					t.Logf("%s, restart took %v: ping %s: %s", how, restart.Round(time.Millisecond), p.dst, res)
					if res.lost() != 0 || res.received < 50 {
						t.Errorf("%s: ping %s lost %d packets (%s)", how, p.dst, res.lost(), res)
					}
				}
				if bc.kind != "ovs" {
					continue
				}
				flowsAfter := ourFlows(t, r.box)
				for k, before := range flowsBefore {
					if after, ok := flowsAfter[k]; !ok || after.duration < before.duration || after.packets < before.packets {
						t.Errorf("%s: flow re-installed or gone: %s: before %+v, after %+v", how, k, before, after)
					}
				}
				if len(flowsAfter) != len(flowsBefore) {
					t.Errorf("%s: %d flows before, %d after", how, len(flowsBefore), len(flowsAfter))
				}
				if mods := snoop.mods(); len(mods) != 0 {
					t.Errorf("%s: the restarted daemon sent %d table mods, want none:\n%s", how, len(mods), strings.Join(mods, "\n"))
				}
			}
		})
	}
}

// TestVswitchdRestart kills ovs-vswitchd (a crash: no cleanup, every flow
// gone) and starts it again: traffic must come back by itself, which takes
// the daemon noticing the bridge reconnect and pushing its flows again.
func TestVswitchdRestart(t *testing.T) {
	r := newRelNet(t, backends[0])
	pings := []*pinger{startPing(t, r.nsA, r.peerIP), startPing(t, r.nsA, r.routeIP)}
	time.Sleep(500 * time.Millisecond)
	killSandboxDaemon(t, r.box, "ovs-vswitchd")
	start := time.Now()
	testbed.Run(t, filepath.Join(repoRoot, "hack", "ovs-sandbox.sh"), "restart-vswitchd", r.box.Dir)
	t.Logf("ovs-vswitchd killed and started again in %v", time.Since(start).Round(time.Millisecond))
	waitFor(t, "ping in blue after the vswitchd restart", func() bool { return pingOnce(r.nsA, r.peerIP) })
	waitFor(t, "ping across the router after the vswitchd restart", func() bool { return pingOnce(r.nsA, r.routeIP) })
	recovered := time.Since(start)
	time.Sleep(time.Second)
	for _, p := range pings {
		res := p.stop(t)
		// The bound is waitFor's; the figure is for the report.
		t.Logf("ping %s: %s; gap %v (%d lost × 10 ms); pingOnce worked again %v after the kill", p.dst, res,
			res.maxGap.Round(time.Millisecond), res.missing, recovered.Round(time.Millisecond))
		if res.tailLost() > 2 {
			t.Errorf("ping %s: traffic did not stay up after recovery: %s", p.dst, res)
		}
	}
	if code, body := r.d.do("GET", "/readyz", nil); code != 200 {
		t.Errorf("/readyz after the vswitchd restart: %d %s", code, body)
	}
}

// TestOVSDBRestart kills ovsdb-server under the daemon and starts it again:
// /readyz and ovs_vnet_ovsdb_connected show the outage, the daemon reconnects
// by itself without touching a flow, and can attach ports again.
//
// Forwarding through the outage is ovs-vswitchd's business, and the
// userspace datapath does not keep it: vswitchd polls its non-PMD ports from
// its main loop, which stalls until it has its database back (the same on a
// bare NORMAL bridge with no controller at all). So the test reports the
// silence and asserts recovery, not zero loss.
func TestOVSDBRestart(t *testing.T) {
	r := newRelNet(t, backends[0])
	flowsBefore := ourFlows(t, r.box)
	snoop := snoopController(t, r.box, "br-vnet", r.d)
	pings := []*pinger{startPing(t, r.nsA, r.peerIP), startPing(t, r.nsA, r.routeIP)}
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	killSandboxDaemon(t, r.box, "ovsdb-server")
	restarted := false
	t.Cleanup(func() {
		if !restarted { // the sandbox's down wants its database back
			_ = exec.Command(filepath.Join(repoRoot, "hack", "ovs-sandbox.sh"), "restart-ovsdb", r.box.Dir).Run()
		}
	})
	waitFor(t, "/readyz 503 while ovsdb-server is down", func() bool {
		code, _ := r.d.do("GET", "/readyz", nil)
		return code == 503
	})
	waitFor(t, "ovs_vnet_ovsdb_connected 0", func() bool { return metricValue(t, r.d, "ovs_vnet_ovsdb_connected") == "0" })
	if code, body := r.d.do("PUT", "/v1/ports/early", map[string]string{"network": "blue", "netns": newNetns(t, "vnt-e-")}); code != 503 {
		t.Errorf("PUT a port during the outage: %d %s, want 503", code, body)
	}
	time.Sleep(time.Second) // an outage long enough for a few reconnect attempts
	up := time.Now()
	testbed.Run(t, filepath.Join(repoRoot, "hack", "ovs-sandbox.sh"), "restart-ovsdb", r.box.Dir)
	restarted = true
	t.Logf("ovsdb-server down for %v", time.Since(killed).Round(time.Millisecond))
	waitFor(t, "/readyz 200 after ovsdb-server is back", func() bool {
		code, _ := r.d.do("GET", "/readyz", nil)
		return code == 200
	})
	t.Logf("ready again %v after ovsdb-server was started", time.Since(up).Round(time.Millisecond))
	if v := metricValue(t, r.d, "ovs_vnet_ovsdb_connected"); v != "1" {
		t.Errorf("ovs_vnet_ovsdb_connected %s after reconnect", v)
	}
	waitFor(t, "ping in blue after the ovsdb-server restart", func() bool { return pingOnce(r.nsA, r.peerIP) })
	waitFor(t, "ping across the router after the ovsdb-server restart", func() bool { return pingOnce(r.nsA, r.routeIP) })
	time.Sleep(time.Second)
	for _, p := range pings {
		res := p.stop(t)
		t.Logf("ping %s through the ovsdb-server restart: %s", p.dst, res)
		if res.tailLost() > 2 {
			t.Errorf("ping %s: traffic did not stay up after recovery: %s", p.dst, res)
		}
	}
	// The reconnect cost no flow: vswitchd kept them, and the daemon had
	// nothing to resend.
	if mods := snoop.mods(); len(mods) != 0 {
		t.Errorf("the OVSDB reconnect sent %d table mods, want none:\n%s", len(mods), strings.Join(mods, "\n"))
	}
	flowsAfter := ourFlows(t, r.box)
	for k, before := range flowsBefore {
		if after, ok := flowsAfter[k]; !ok || after.duration < before.duration {
			t.Errorf("flow re-installed or gone: %s: before %+v, after %+v", k, before, after)
		}
	}
	nsD := newNetns(t, "vnt-d-")
	var dv portView
	r.d.must("PUT", "/v1/ports/d", map[string]string{"network": "blue", "netns": nsD}, 201, &dv)
	ping(t, nsD, r.peerIP, true)
	ping(t, nsD, r.routeIP, true)
	ports := bridgePorts(t, r.box, r.d.hostNS)
	if len(ports) != 4 || !slices.Contains(ports, dv.HostIfname) {
		t.Errorf("OVS ports after the restart: %q, want a, b, c and d", ports)
	}
}

// killSandboxDaemon SIGKILLs one of the sandbox's daemons by its pid file,
// after checking the pid is that daemon: a crash, not a shutdown.
func killSandboxDaemon(t *testing.T, box *testbed.Sandbox, name string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(box.Dir, name+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("%s pid file: %v", name, err)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != name {
		t.Fatalf("pid %d is %q, not %s", pid, comm, name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Gone means gone or a zombie: the sandbox daemons are detached and
	// their reaper may be slow.
	waitFor(t, name+" gone", func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || strings.Contains(string(st), ") Z ")
	})
}

// metricValue returns the value of an unlabelled metric on /metrics.
func metricValue(t *testing.T, d *daemon, name string) string {
	t.Helper()
	_, body := d.do("GET", "/metrics", nil)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// pinger is `ping -D -i 0.01` running in a namespace until stopped.
type pinger struct {
	dst string
	cmd *exec.Cmd
	out *testbed.SyncBuffer
}

func startPing(t *testing.T, ns, dst string) *pinger {
	t.Helper()
	// -w bounds a ping the test forgets; ip netns exec execs ping, so the
	// pid is ping's and SIGINT reaches it.
	p := &pinger{dst: dst, out: &testbed.SyncBuffer{}}
	p.cmd = exec.Command("ip", "netns", "exec", ns, "ping", "-D", "-n", "-i", "0.01", "-w", "600", dst)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// pingResult is what one ping run saw.
type pingResult struct {
	transmitted, received int
	// missing counts sequence numbers below the highest answered one that
	// got no answer: lost for sure, not merely in flight at the stop.
	missing int
	maxSeq  int
	maxGap  time.Duration // longest time between two consecutive answers
	gapAt   time.Time     // when the longest silence began
}

// lost is every loss but the tail in flight when ping was stopped: at most
// one or two packets that had no time to come back.
func (r pingResult) lost() int { return r.missing + max(0, r.tailLost()-2) }

func (r pingResult) tailLost() int { return r.transmitted - r.maxSeq }

func (r pingResult) String() string {
	return fmt.Sprintf("%d packets transmitted, %d received, %d missing before the last answer (#%d), longest silence %v from %s",
		r.transmitted, r.received, r.missing, r.maxSeq, r.maxGap.Round(time.Millisecond), r.gapAt.Format("15:04:05.000"))
}

var (
	replyRE   = regexp.MustCompile(`^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) `)
	summaryRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
)

// stop interrupts ping (it then prints its summary) and parses its output.
func (p *pinger) stop(t *testing.T) pingResult {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil && !strings.Contains(p.out.String(), "packets transmitted") {
		t.Fatalf("ping %s: %v\n%s", p.dst, err, p.out)
	}
	p.cmd = nil
	var r pingResult
	seen := map[int]bool{}
	var last float64
	for _, line := range strings.Split(p.out.String(), "\n") {
		if m := replyRE.FindStringSubmatch(line); m != nil && !strings.Contains(line, "DUP!") {
			ts, _ := strconv.ParseFloat(m[1], 64)
			seq, _ := strconv.Atoi(m[2])
			seen[seq] = true
			r.maxSeq = max(r.maxSeq, seq)
			if gap := time.Duration((ts - last) * float64(time.Second)); last != 0 && gap > r.maxGap {
				r.maxGap, r.gapAt = gap, time.UnixMicro(int64(last*1e6))
			}
			last = ts
		} else if m := summaryRE.FindStringSubmatch(line); m != nil {
			r.transmitted, _ = strconv.Atoi(m[1])
			r.received, _ = strconv.Atoi(m[2])
		}
	}
	if r.transmitted == 0 {
		t.Fatalf("ping %s printed no summary:\n%s", p.dst, p.out)
	}
	for seq := 1; seq <= r.maxSeq; seq++ {
		if !seen[seq] {
			r.missing++
		}
	}
	return r
}

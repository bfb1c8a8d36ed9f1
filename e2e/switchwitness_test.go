package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// The switch, not the daemon, says what changed in its tables: a flow
// monitor (`ovs-ofctl monitor BRIDGE watch:`) is told by ovs-vswitchd of
// every flow added (also one added again unchanged), modified or deleted by
// any connection; the group table is compared as `ovs-ofctl dump-groups`
// prints it; a snoop (`ovs-ofctl snoop`) sees every message the daemon
// sends. A daemon that miscounts its own mods cannot fool any of them.

// flowWatch is a running flow monitor on one bridge.
type flowWatch struct {
	t   testing.TB
	ctl string // the monitor's unixctl socket, for ofctl/barrier
	out string // file the monitor prints to
	// counted is how many barrier replies the events counted so far lie
	// before.
	counted int
}

// watchFlows starts a flow monitor on box's bridge that reports changes only
// (no initial dump), stopped at cleanup.
func watchFlows(t testing.TB, box *testbed.Sandbox, bridge string) *flowWatch {
	t.Helper()
	dir := t.TempDir()
	w := &flowWatch{t: t, ctl: filepath.Join(dir, "monitor.ctl"), out: filepath.Join(dir, "monitor.out")}
	f, err := os.Create(w.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A file, not a pipe: what the monitor wrote before it answered a
	// barrier is readable once the barrier returns.
	cmd := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "--unixctl="+w.ctl, "monitor", box.Mgmt(bridge), "watch:!initial")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ovs-ofctl monitor: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// The reply to the monitor request: from here on every change is told.
	w.waitOutput("the flow monitor's reply", func(s string) bool { return strings.Contains(s, "ONFST_FLOW_MONITOR reply") })
	return w
}

// changes returns the flow changes the switch reported since the last call,
// keyed add, modify and delete. A barrier on the monitor's own connection
// fences them: ovs-vswitchd queues a change's report before it answers the
// barrier of the connection that made it, so every change made before the
// call is reported before the barrier's reply.
func (w *flowWatch) changes() map[string]int {
	w.t.Helper()
	if out, err := exec.Command("ovs-appctl", "--timeout=30", "-t", w.ctl, "ofctl/barrier").CombinedOutput(); err != nil {
		w.t.Fatalf("ofctl/barrier on the flow monitor: %v\n%s\nmonitor:\n%s", err, out, w.read())
	}
	w.counted++
	var text string
	w.waitOutput("the barrier reply", func(s string) bool {
		text = s
		return strings.Count(s, "OFPT_BARRIER_REPLY") >= w.counted
	})
	// The events between the previous barrier reply and this one.
	parts := strings.Split(text, "OFPT_BARRIER_REPLY")
	got := map[string]int{}
	for _, line := range strings.Split(parts[w.counted-1], "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.Contains(line, "PAUSED"), strings.Contains(line, "RESUMED"), strings.HasPrefix(line, "event=ABBREV"):
			// Paused: the switch stopped telling details; the count is lost.
			w.t.Fatalf("the flow monitor lost track (%q); monitor:\n%s", line, text)
		case strings.HasPrefix(line, "event=ADDED"):
			got["add"]++
		case strings.HasPrefix(line, "event=MODIFIED"):
			got["modify"]++
		case strings.HasPrefix(line, "event=DELETED"):
			got["delete"]++
		}
	}
	return got
}

func (w *flowWatch) read() string {
	b, err := os.ReadFile(w.out)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b)
}

func (w *flowWatch) waitOutput(what string, cond func(string) bool) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := w.read()
		if cond(s) {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("flow monitor: %s not within 30s; output:\n%s", what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupTable is the bridge's group table as ovs-ofctl prints it, one
// description per group_id.
func groupTable(t testing.TB, box *testbed.Sandbox, bridge string) map[string]string {
	t.Helper()
	groups := map[string]string{}
	for _, line := range strings.Split(box.Ofctl(t, "dump-groups", bridge), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "group_id=") {
			continue
		}
		id, _, _ := strings.Cut(line, ",")
		groups[id] = line
	}
	return groups
}

// groupChanges counts the groups added, modified and deleted from before to
// after, keyed as flowWatch.changes.
func groupChanges(before, after map[string]string) map[string]int {
	got := map[string]int{}
	for id, desc := range after {
		switch old, ok := before[id]; {
		case !ok:
			got["add"]++
		case old != desc:
			got["modify"]++
		}
	}
	for id := range before {
		if _, ok := after[id]; !ok {
			got["delete"]++
		}
	}
	return got
}

// snoopWatch is `ovs-ofctl snoop` on the bridge: every OpenFlow message
// between ovs-vswitchd and its controller, the daemon, printed as the switch
// decoded it, across the controller's reconnects. It also sees the mods
// that leave the tables as they were, which the flow monitor and the group
// table do not show (a flow modified to what it was, a group sent again), so
// it witnesses "nothing sent" on a restart.
type snoopWatch struct {
	t   testing.TB
	d   *daemon
	out string
	// seen is how much of out was counted.
	seen int
}

// snoopController starts the snoop, stopped at cleanup, and returns once
// it sees d's connection.
func snoopController(t testing.TB, box *testbed.Sandbox, bridge string, d *daemon) *snoopWatch {
	t.Helper()
	dir := t.TempDir()
	s := &snoopWatch{t: t, d: d, out: filepath.Join(dir, "snoop.out")}
	f, err := os.Create(s.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "--unixctl="+filepath.Join(dir, "snoop.ctl"), "snoop", "unix:"+filepath.Join(box.Dir, bridge+".snoop"))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ovs-ofctl snoop: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s.mods()
	return s
}

// tableMods are the messages that change the switch's tables; one sent in
// a bundle is printed inside its ONFT_BUNDLE_ADD_MESSAGE, at the start of a
// line like one sent alone.
var tableMods = []string{"OFPT_FLOW_MOD", "OFPT_GROUP_MOD", "OFPT_METER_MOD", "OFPT_TABLE_MOD", "OFPT_PORT_MOD"}

// mods returns the table-changing messages the daemon sent since the last
// call, each by its first line. The fence is a table stats request the daemon makes for GET
// /metrics (datapath/ovs/stats.go): the switch copies its connection's
// messages to the snoop in order, so once that reply is printed, all the
// daemon sent before is too. The snoop drops copies it cannot send at once
// (a full socket): the fence is asked again until one arrives.
func (s *snoopWatch) mods() []string {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		before := strings.Count(s.read(), "OFPST_TABLE reply")
		if code, body := s.d.do("GET", "/metrics", nil); code != 200 {
			s.t.Fatalf("GET /metrics (the snoop's fence): %d %s", code, body)
		}
		for wait := time.Now().Add(5 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			text := s.read()
			if strings.Count(text, "OFPST_TABLE reply") > before {
				var mods []string
				echo := false
				for _, line := range strings.Split(text[s.seen:], "\n") {
					for _, m := range tableMods {
						// An OFPT_ERROR is printed with the request it
						// refuses on its next line: that one was counted.
						if strings.HasPrefix(line, m+" ") && !echo {
							mods = append(mods, line)
						}
					}
					if line != "" && !strings.HasPrefix(line, " ") {
						echo = strings.HasPrefix(line, "OFPT_ERROR ")
					}
				}
				s.seen = len(text)
				return mods
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("snoop: no table stats reply for GET /metrics within 60s; output:\n%s", s.read())
		}
	}
}

func (s *snoopWatch) read() string {
	b, err := os.ReadFile(s.out)
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

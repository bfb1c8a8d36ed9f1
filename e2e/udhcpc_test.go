package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// The DHCP client of the DHCP tests is busybox udhcpc (busybox-static),
// run in a port's namespace with a script of the test's own: it records
// every event with what the server handed out, and applies the address,
// route and MTU itself, as a workload's client would.
const udhcpcScript = `#!/bin/sh
echo "$1 ip=$ip mask=$mask router=$router dns=$dns domain=$domain mtu=$mtu lease=$lease serverid=$serverid" >>"$VNET_DHCP_LOG"
case $1 in
deconfig) ip -4 addr flush dev "$interface" ;;
bound|renew)
	[ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
	ip addr replace "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
	;;
esac
exit 0
`

// proc is a program run in the background, killed at cleanup if still
// running; its output is logged if the test failed.
type proc struct {
	cmd  *exec.Cmd
	out  *testbed.SyncBuffer
	done chan error
}

func startProc(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &testbed.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		if t.Failed() {
			t.Logf("%s %v:\n%s", name, args, p.out)
		}
	})
	return p
}

// wait waits, bounded, for the program's end and returns its output and
// whether it exited with 0.
func (p *proc) wait(t *testing.T, bound time.Duration) (string, bool) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return p.out.String(), err == nil
	case <-time.After(bound):
		t.Fatalf("%v did not end within %s:\n%s", p.cmd.Args, bound, p.out)
		return "", false
	}
}

// udhcpc is one run of busybox udhcpc on eth0 of a namespace.
type udhcpc struct {
	*proc
	events string // the script's log
}

// udhcpcEvent is one line of the script's log: the event and its fields.
type udhcpcEvent struct {
	Event  string
	Fields map[string]string
}

func (e udhcpcEvent) String() string { return fmt.Sprintf("%s %v", e.Event, e.Fields) }

// startUdhcpc runs `busybox udhcpc -i eth0 -s SCRIPT args...` in ns, until
// it ends or t's cleanup.
func startUdhcpc(t *testing.T, ns string, args ...string) *udhcpc {
	t.Helper()
	needStaticBusybox(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "udhcpc.script")
	if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(dir, "events")
	return &udhcpc{startProc(t, []string{"VNET_DHCP_LOG=" + events}, "ip",
		append([]string{"netns", "exec", ns, busyboxStatic, "udhcpc", "-i", "eth0", "-s", script}, args...)...), events}
}

// runUdhcpc runs udhcpc in ns to its end, bounded, and returns whether it
// succeeded (got a lease), with its events and its log.
func runUdhcpc(t *testing.T, ns string, args ...string) (ok bool, events []udhcpcEvent, log string) {
	t.Helper()
	c := startUdhcpc(t, ns, args...)
	log, ok = c.wait(t, 30*time.Second)
	return ok, c.eventsSoFar(t), log
}

func (c *udhcpc) eventsSoFar(t *testing.T) []udhcpcEvent {
	t.Helper()
	raw, err := os.ReadFile(c.events)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []udhcpcEvent
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line == "" {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		e := udhcpcEvent{Event: name, Fields: map[string]string{}}
		// Values hold no "=" but may hold spaces (dns lists): a field
		// runs up to the next " key=".
		for rest != "" {
			key, v, _ := strings.Cut(rest, "=")
			next := strings.Index(v, "=")
			if next < 0 {
				e.Fields[key], rest = v, ""
				break
			}
			cut := max(strings.LastIndex(v[:next], " "), 0)
			e.Fields[key], rest = v[:cut], strings.TrimPrefix(v[cut:], " ")
		}
		out = append(out, e)
	}
	return out
}

// signal sends sig to the running udhcpc (SIGUSR1: renew; SIGUSR2:
// release) and waits, bounded, for the script's first event named event
// after it, and returns it.
func (c *udhcpc) signal(t *testing.T, sig syscall.Signal, event string) udhcpcEvent {
	t.Helper()
	before := len(c.eventsSoFar(t))
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal udhcpc: %v", err)
	}
	return c.waitEvent(t, before, event)
}

// waitEvent waits, bounded, for an event named event after the first
// skip events, and returns it.
func (c *udhcpc) waitEvent(t *testing.T, skip int, event string) udhcpcEvent {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		events := c.eventsSoFar(t)
		for _, e := range events[min(skip, len(events)):] {
			if e.Event == event {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event from udhcpc within 20s; events %v; log:\n%s", event, events, c.out)
		}
	}
}

// stop ends the running udhcpc with SIGTERM, which releases nothing
// (no -R), and waits for it.
func (c *udhcpc) stop(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	c.wait(t, 10*time.Second)
}

// lastEvent is the last event of the list named event.
func lastEvent(t *testing.T, events []udhcpcEvent, event string) udhcpcEvent {
	t.Helper()
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Event == event {
			return events[i]
		}
	}
	t.Fatalf("no %q event among %v", event, events)
	return udhcpcEvent{}
}

// dhcpCounters are the DHCP series of a scrape, and the drops, by
// "metric{label=value}" with the metric's name shortened to its kind.
func dhcpCounters(t *testing.T, d *daemon) map[string]float64 {
	t.Helper()
	fams := scrape(t, d)
	out := map[string]float64{}
	for _, f := range []struct{ kind, name, label string }{
		{"requests", "ovs_vnet_dhcp_requests_total", "type"},
		{"answers", "ovs_vnet_dhcp_answers_total", "type"},
		{"refused", "ovs_vnet_dhcp_refused_total", "reason"},
		{"drop", "ovs_vnet_drop_packets_total", "reason"},
	} {
		for _, m := range fams[f.name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == f.label {
					out[f.kind+"{"+l.GetValue()+"}"] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// checkCounted fails unless each counter rose from before to now by at
// least its want (exactly, where exact).
func checkCounted(t *testing.T, what string, before, now map[string]float64, want map[string]float64, exact bool) {
	t.Helper()
	for k, w := range want {
		got := now[k] - before[k]
		if got < w || (exact && got != w) {
			t.Errorf("%s: %s rose by %v, want %v (exact %v); before %v, now %v", what, k, got, w, exact, before[k], now[k])
		}
	}
}

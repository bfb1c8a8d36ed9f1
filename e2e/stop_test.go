package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopWhileStuck: SIGTERM ends the daemon even while an attach is stuck
// in a call that never returns (the fault-injection build hangs it at a
// point of the attach): the daemon gives up after its stop bound, exits
// non-zero saying what was still running, and the next start converges on
// the port the stuck attach left half made.
func TestStopWhileStuck(t *testing.T) {
	bin := buildFaultDaemon(t)
	const point = "attach-after-netns-config"
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-stop-")
			args, _ := bc.setup(t, hostNS)
			d := newDaemonOn(t, hostNS, args...)
			d.startArmed(bin, "hang:"+point)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.67.0.0/24"}`, 201, nil)
			ns := newNetns(t, "vnt-stopa-")
			put := make(chan int, 1)
			go func() {
				code, _ := d.do("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": ns})
				put <- code
			}()
			for deadline := time.Now().Add(60 * time.Second); !strings.Contains(d.log.String(), "fault: hang at "+point); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the attach never reached %s", point)
				}
			}

			if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- d.cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(2 * time.Minute): // the bound is 15 s; this only ends a broken test
				d.kill()
				t.Fatal("SIGTERM did not end a daemon with a stuck attach")
			}
			state := d.cmd.ProcessState
			d.ended()
			if state.ExitCode() != 1 || !strings.Contains(d.log.String(), "did not stop within") {
				t.Fatalf("exit %v; want status 1 and a message saying what was still running", state)
			}
			<-put // the client saw its connection end, whatever it got

			// The unarmed daemon finishes the port at its start.
			d.start()
			var p portView
			d.must("GET", "/v1/ports/a", nil, 200, &p)
			ping(t, ns, "10.67.0.1", true)
			d.must("DELETE", "/v1/ports/a", nil, 204, nil)
			d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
			d.stop()
		})
	}
}

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// A port's netns is the client's path (issue 16, Musts 2 and 3): what is not
// a network namespace of its own is refused at once, and a port changes no
// route of its namespace that it did not create (docs/API.md, "Default
// route").

// answerBound is how long a request that must be answered at once may take
// before the test calls it hung: generous, the answer takes milliseconds.
const answerBound = 30 * time.Second

// TestNetnsRefused: a FIFO, a directory, a regular file, /dev/null, the
// daemon's own namespace (by /proc/self, by its `ip netns` name) and PID
// 1's are refused with 400 at once and leave nothing behind; a FIFO PUT
// holds up no other request; SIGTERM then ends the daemon.
func TestNetnsRefused(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.65.0.0/24"}`, 201, nil)
			dir := t.TempDir()
			fifo, file := filepath.Join(dir, "fifo"), filepath.Join(dir, "file")
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			// A daemon that opens the FIFO blocks until a writer comes: be
			// that writer at the end, so that a failing run ends too.
			t.Cleanup(func() {
				if f, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
					f.Close()
				}
			})
			if err := os.WriteFile(file, []byte("not a namespace\n"), 0o600); err != nil {
				t.Fatal(err)
			}

			type answer struct {
				code int
				body string
			}
			answered := make(chan answer, 1)
			go func() {
				code, body := d.do("PUT", "/v1/ports/fifo", map[string]string{"network": "blue", "netns": fifo, "ip": "10.65.0.9"})
				answered <- answer{code, string(body)}
			}()
			// Served meanwhile: a change that takes both of the controller's
			// locks, a port, reads.
			ok := newNetns(t, "vnt-ok-")
			d.must("PUT", "/v1/networks/red", `{"subnet":"10.67.0.0/24"}`, 201, nil)
			d.must("PUT", "/v1/ports/ok", map[string]string{"network": "red", "netns": ok}, 201, nil)
			d.must("GET", "/v1/ports", nil, 200, nil)
			select {
			case got := <-answered:
				if got.code != 400 || !strings.Contains(got.body, "FIFO") {
					t.Fatalf("PUT with a FIFO as netns: %d %s, want 400 naming the FIFO", got.code, got.body)
				}
			case <-time.After(answerBound):
				t.Fatalf("PUT with a FIFO as netns: no answer within %s", answerBound)
			}

			for _, netns := range []string{dir, file, "/dev/null", "/proc/self/ns/net", "/var/run/netns/" + hostNS, hostNS, "/proc/1/ns/net"} {
				code, body := d.do("PUT", "/v1/ports/bad", map[string]string{"network": "blue", "netns": netns, "ip": "10.65.0.9"})
				if code != 400 || !strings.Contains(string(body), `"error"`) {
					t.Errorf("PUT with netns %s: %d %s, want 400 with a JSON error", netns, code, body)
				}
			}
			// Nothing left: no record, no link, the address free.
			var list struct{ Ports []portView }
			d.must("GET", "/v1/ports?network=blue", nil, 200, &list)
			if len(list.Ports) != 0 {
				t.Errorf("refused ports listed: %v", list.Ports)
			}
			for _, l := range linksIn(t, hostNS) {
				if a := l.Attrs().Alias; a == "ovs-vnet:port=fifo" || a == "ovs-vnet:port=bad" {
					t.Errorf("refused port left link %s (%s)", l.Attrs().Name, a)
				}
			}
			d.must("PUT", "/v1/ports/tap", `{"network":"blue","type":"tap","ip":"10.65.0.9"}`, 201, nil)

			d.stop() // fails the test unless SIGTERM ends the daemon, cleanly
			d.start()
			for _, p := range []string{"ok", "tap"} {
				d.must("DELETE", "/v1/ports/"+p, nil, 204, nil)
			}
			d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
			d.must("DELETE", "/v1/networks/red", nil, 204, nil)
			d.stop()
			assertNothingLeft(t, hostNS, box, d.stateDir, ok)
		})
	}
}

// TestNetnsDefaultRoute: a namespace with an uplink of its own keeps its
// default route through the attach and delete of a port, and through a
// restart; `default_route: true` takes it over, across a restart, and the
// DELETE puts it back; it does not take over another port's route (409),
// so no chain of take-overs loses the uplink's; a port that set the
// default route takes only its own away, and does not take back, at a
// restart, a route set in its place.
func TestNetnsDefaultRoute(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.66.0.0/24"}`, 201, nil)
			const uplink = "default via 192.0.2.1 dev up0"

			// A namespace without a default route gets the port's, as before.
			peer := newNetns(t, "vnt-peer-")
			d.must("PUT", "/v1/ports/peer", map[string]string{"network": "blue", "netns": peer, "ip": "10.66.0.20"}, 201, nil)
			wantDefault(t, peer, "default via 10.66.0.1 dev eth0")
			refusedTakeOver(t, d, "grab", peer, "peer")

			// A namespace with its own uplink keeps its route.
			up := newNetns(t, "vnt-up-")
			addUplink(t, up, true)
			d.must("PUT", "/v1/ports/second", map[string]string{"network": "blue", "netns": up, "ifname": "eth1"}, 201, nil)
			wantDefault(t, up, uplink)
			ping(t, up, "10.66.0.20", true) // through the port's subnet route
			d.stop()
			d.start()
			wantDefault(t, up, uplink)
			d.must("DELETE", "/v1/ports/second", nil, 204, nil)
			wantDefault(t, up, uplink)

			// Asked, a port takes it over, keeps it across a restart, and
			// its DELETE puts the uplink's back.
			var taker portView
			d.must("PUT", "/v1/ports/taker", map[string]any{"network": "blue", "netns": up, "ifname": "eth2", "default_route": true}, 201, &taker)
			if taker.DefaultRoute == nil || !*taker.DefaultRoute {
				t.Errorf("port answer %+v lacks default_route", taker)
			}
			wantDefault(t, up, "default via 10.66.0.1 dev eth2")
			ping(t, up, "10.66.0.20", true)
			d.stop()
			d.start()
			wantDefault(t, up, "default via 10.66.0.1 dev eth2")
			// A second taker would record the first's route as displaced,
			// and lose the uplink's whatever the order of the DELETEs.
			refusedTakeOver(t, d, "chain", up, "taker")
			wantDefault(t, up, "default via 10.66.0.1 dev eth2")
			d.must("DELETE", "/v1/ports/taker", nil, 204, nil)
			wantDefault(t, up, uplink)

			// The peer's owner replaces the port's route: a restart does not
			// take it back, and the DELETE leaves it.
			addUplink(t, peer, false)
			testbed.Run(t, "ip", "-n", peer, "route", "replace", "default", "via", "192.0.2.1", "dev", "up0")
			d.stop()
			d.start()
			wantDefault(t, peer, uplink)
			d.must("DELETE", "/v1/ports/peer", nil, 204, nil)
			wantDefault(t, peer, uplink)

			// A port that set the default route takes only its own away.
			solo := newNetns(t, "vnt-solo-")
			addUplink(t, solo, false)
			testbed.Run(t, "ip", "-n", solo, "route", "add", "198.51.100.0/24", "via", "192.0.2.1", "dev", "up0")
			d.must("PUT", "/v1/ports/solo", map[string]string{"network": "blue", "netns": solo}, 201, nil)
			wantDefault(t, solo, "default via 10.66.0.1 dev eth0")
			d.must("DELETE", "/v1/ports/solo", nil, 204, nil)
			wantDefault(t, solo, "")
			if out := testbed.Run(t, "ip", "-n", solo, "-4", "route", "show", "198.51.100.0/24"); !strings.Contains(out, "via 192.0.2.1 dev up0") {
				t.Errorf("netns %s lost a route it had: %q", solo, out)
			}

			d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
			d.stop()
			assertNothingLeft(t, hostNS, box, d.stateDir)
		})
	}
}

// refusedTakeOver checks that port name, asking for the default route of
// ns, which is port owner's, is refused with 409 naming owner, and leaves
// nothing: no record, no interface.
func refusedTakeOver(t *testing.T, d *daemon, name, ns, owner string) {
	t.Helper()
	code, body := d.do("PUT", "/v1/ports/"+name, map[string]any{"network": "blue", "netns": ns, "ifname": "eth7", "default_route": true})
	if code != 409 || !strings.Contains(string(body), "the default route is port "+owner+"'s") {
		t.Fatalf("PUT %s taking over port %s's default route: %d %s, want 409 naming %s", name, owner, code, body, owner)
	}
	d.must("GET", "/v1/ports/"+name, nil, 404, nil)
	if out := testbed.Run(t, "ip", "-n", ns, "link", "show"); strings.Contains(out, "eth7") {
		t.Fatalf("refused port %s left eth7 in netns %s:\n%s", name, ns, out)
	}
}

// addUplink gives ns an uplink of its own: up0, 192.0.2.2/24 (a veth whose
// peer stays in ns: this kernel has no dummy links) and, when withDefault,
// the default route via 192.0.2.1.
func addUplink(t *testing.T, ns string, withDefault bool) {
	t.Helper()
	testbed.Run(t, "ip", "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0-peer")
	testbed.Run(t, "ip", "-n", ns, "addr", "add", "192.0.2.2/24", "dev", "up0")
	testbed.Run(t, "ip", "-n", ns, "link", "set", "up0-peer", "up")
	testbed.Run(t, "ip", "-n", ns, "link", "set", "up0", "up")
	if withDefault {
		testbed.Run(t, "ip", "-n", ns, "route", "add", "default", "via", "192.0.2.1", "dev", "up0")
	}
}

// wantDefault checks ns's IPv4 default routes: want, or none when want is "".
func wantDefault(t *testing.T, ns, want string) {
	t.Helper()
	got := strings.Join(strings.Fields(testbed.Run(t, "ip", "-n", ns, "-4", "route", "show", "default")), " ")
	if got != want {
		t.Fatalf("netns %s default route: %q, want %q", ns, got, want)
	}
}

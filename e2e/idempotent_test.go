package e2e

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestIdempotentPut is issue 17's second acceptance, its first half: the
// identical PUT of an existing port answers 200 with the port as it is, on
// each backend, with spare ports on OVS (the port then has a spare's host
// link, not the one its name gives), and in a cluster.
func TestIdempotentPut(t *testing.T) {
	for _, bc := range crashKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-idem-")
			args, _ := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			identicalPuts(t, d, bc.name == "ovs-spares")
		})
	}
	t.Run("cluster", func(t *testing.T) {
		testbed.Need(t, lookPath("etcd"), "etcd (apt-get install etcd-server)")
		for _, backend := range []string{"ovs", "linux"} {
			t.Run(backend, func(t *testing.T) {
				var flags []string
				if backend == "ovs" {
					flags = []string{"--spare-ports", "4"}
				}
				c := startCluster(t, backend, 1, flags...)
				identicalPuts(t, c.hosts["h1"], backend == "ovs")
			})
		}
	})
}

// identicalPuts makes a network and a veth and a tap port on d and sends
// each port's PUT again, as a retrying client would. spares: d has
// --spare-ports, and the veth port must have claimed one.
func identicalPuts(t *testing.T, d *daemon, spares bool) {
	d.must("PUT", "/v1/networks/blue", `{"subnet":"10.71.0.0/24"}`, http.StatusCreated, nil)
	if spares {
		waitSpares(t, d)
	}
	ns := newNetns(t, "vnt-idema-")
	spec := map[string]any{"network": "blue", "netns": ns}
	var first, again portView
	d.must("PUT", "/v1/ports/a", spec, http.StatusCreated, &first)
	if spares != link.IsSpare(first.HostIfname) {
		t.Fatalf("host_ifname %s: a spare's is %v, want %v", first.HostIfname, !spares, spares)
	}
	d.must("PUT", "/v1/ports/a", spec, http.StatusOK, &again)
	if !reflect.DeepEqual(again, first) {
		t.Fatalf("identical PUT answered %+v, want the port as created: %+v", again, first)
	}
	// Every field given, as the answer shows them: the same spec too.
	ip, _, _ := strings.Cut(first.IP, "/")
	full := map[string]any{"network": "blue", "netns": ns, "ifname": "eth0", "type": "veth", "ip": ip, "mac": first.MAC}
	d.must("PUT", "/v1/ports/a", full, http.StatusOK, nil)
	for field, other := range map[string]any{"netns": newNetns(t, "vnt-idemb-"), "ifname": "eth1", "ip": "10.71.0.99"} {
		changed := map[string]any{"network": "blue", "netns": ns}
		changed[field] = other
		d.must("PUT", "/v1/ports/a", changed, http.StatusConflict, nil)
	}
	ping(t, ns, "10.71.0.1", true)

	tap := map[string]any{"network": "blue", "type": "tap"}
	d.must("PUT", "/v1/ports/t", tap, http.StatusCreated, &first)
	d.must("PUT", "/v1/ports/t", tap, http.StatusOK, &again)
	if !reflect.DeepEqual(again, first) {
		t.Fatalf("identical PUT of a tap answered %+v, want %+v", again, first)
	}
	d.must("DELETE", "/v1/ports/t", nil, http.StatusNoContent, nil)
	d.must("DELETE", "/v1/ports/a", nil, http.StatusNoContent, nil)
	d.must("DELETE", "/v1/networks/blue", nil, http.StatusNoContent, nil)
}

// TestOVSDBStallDuringAttach is issue 17's second acceptance, its second
// half: ovsdb-server stops (SIGSTOP) while a port's OVS port is being
// added; the PUT fails and is rolled back, and the add, which ovsdb-server
// still carries out when it resumes, leaves no OVS port behind. The next
// PUT of that port answers 201 and the port forwards. The server resumes
// while the rollback waits for it, or only after the rollback has given up
// (its bound is 30 s), which leaves the port's link for the next PUT to
// take over. OVS only: the Linux backend has no OVSDB.
func TestOVSDBStallDuringAttach(t *testing.T) {
	for _, c := range []struct {
		name string
		// wait is what the test waits for before it resumes ovsdb-server.
		wait func(t *testing.T, d *daemon)
	}{
		{"resumed during the rollback", func(*testing.T, *daemon) {}},
		{"resumed after the rollback gave up", func(t *testing.T, d *daemon) {
			deadline := time.Now().Add(90 * time.Second) // the bound is 30 s
			for !strings.Contains(d.log.String(), "rollback incomplete") {
				if time.Now().After(deadline) {
					t.Fatal("the rollback did not give up")
				}
				time.Sleep(200 * time.Millisecond)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-stall-")
			args, box := backends[0].setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.72.0.0/24"}`, http.StatusCreated, nil)
			nsQ, nsP, nsR := newNetns(t, "vnt-stallq-"), newNetns(t, "vnt-stallp-"), newNetns(t, "vnt-stallr-")
			var q portView
			d.must("PUT", "/v1/ports/q", map[string]any{"network": "blue", "netns": nsQ}, http.StatusCreated, &q)

			// The attach waits for an OVSDB reply that does not come until
			// the client gives up; the daemon's request context ends with
			// the client's connection, and the rollback starts while
			// ovsdb-server is still stopped.
			resume := pauseOVSDB(t, box)
			spec := map[string]any{"network": "blue", "netns": nsP}
			patient := d.client
			d.client = &http.Client{Timeout: 5 * time.Second, Transport: patient.Transport}
			code, body := d.do("PUT", "/v1/ports/p", spec)
			d.client = patient
			if code != 0 {
				t.Fatalf("PUT with ovsdb-server stopped: %d %s, want no answer in time", code, body)
			}
			c.wait(t, d)
			resume()

			// r's OVS port is added on the same OVSDB connection after p's
			// was: once r is attached, ovsdb-server has carried out p's add.
			d.must("PUT", "/v1/ports/r", map[string]any{"network": "blue", "netns": nsR}, http.StatusCreated, nil)
			waitFor(t, "no OVS port of p", func() bool {
				return !slices.Contains(bridgePorts(t, box, hostNS), model.HostIfname("p"))
			})

			// The rollback may still be finishing (409 while it does);
			// then the next PUT attaches p.
			var p portView
			waitFor(t, "p's rollback over", func() bool {
				code, body = d.do("PUT", "/v1/ports/p", spec)
				return code != http.StatusConflict || !strings.Contains(string(body), "being changed")
			})
			if code != http.StatusCreated {
				t.Fatalf("PUT after ovsdb-server resumed: %d %s, want 201", code, body)
			}
			d.must("GET", "/v1/ports/p", nil, http.StatusOK, &p)
			want := []string{model.HostIfname("p"), model.HostIfname("q"), model.HostIfname("r")}
			if got := bridgePorts(t, box, hostNS); !sameSet(got, want) {
				t.Fatalf("bridge ports %v, want %v", got, want)
			}
			qIP, _, _ := strings.Cut(q.IP, "/")
			pIP, _, _ := strings.Cut(p.IP, "/")
			ping(t, nsP, qIP, true)
			ping(t, nsQ, pIP, true)
		})
	}
}

// pauseOVSDB stops the sandbox's ovsdb-server, that process only, and
// returns what resumes it; cleanup resumes it too, for a test that fails
// meanwhile and for the sandbox's down.
func pauseOVSDB(t *testing.T, box *testbed.Sandbox) (resume func()) {
	t.Helper()
	pidfile := filepath.Join(box.Dir, "ovsdb-server.pid")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", pidfile, err)
	}
	if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err != nil || strings.TrimSpace(string(comm)) != "ovsdb-server" {
		t.Fatalf("pid %d of %s is not ovsdb-server: %q, %v", pid, pidfile, comm, err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resume = func() {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Error(err)
		}
	}
	t.Cleanup(resume)
	return resume
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

package controller_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// natText sums up a NAT for the tests' comparisons:
// "fip pub 203.0.113.5>a@10.0.0.2 | fwd web tcp/8080>a@10.0.0.2:80".
func natText(n model.NAT) string {
	var out []string
	for _, f := range n.Floating {
		out = append(out, fmt.Sprintf("fip %s %s>%s@%s", f.Name, f.Address, f.Port, f.IP))
	}
	for _, f := range n.Forwards {
		fw := model.PortForward{Proto: f.Proto, HostIP: f.HostIP, HostPort: f.HostPort}
		out = append(out, fmt.Sprintf("fwd %s %s>%s@%s:%d", f.Name, fw, f.Port, f.IP, f.TargetPort))
	}
	return strings.Join(out, " | ")
}

func (f *fixture) natIs(t *testing.T, want string) {
	t.Helper()
	if got := natText(f.Fake.LastNAT()); got != want {
		t.Fatalf("nat\n  %s\nwant\n  %s", got, want)
	}
}

// storedNAT is what a restarted daemon would load: "pub>a web>a".
func (f *fixture) storedNAT(t *testing.T) string {
	t.Helper()
	s, err := f.St.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range s.FloatingIPs {
		out = append(out, o.Name+">"+o.Port)
	}
	for _, o := range s.PortForwards {
		out = append(out, o.Name+">"+o.Port)
	}
	return strings.Join(out, " ")
}

// TestNAT: floating IPs and forwards are checked, stored and handed to the
// backend whole; a request that changes nothing sends nothing, a refused
// one stores nothing.
func TestNAT(t *testing.T) {
	f := newFixture(t)
	f.callsAre(t, "policy")
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"a"}`, 404)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap","ip":"10.0.0.2"}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/b", `{"network":"blue","type":"tap","ip":"10.0.0.3"}`, 201)
	f.callsAre(t, "attach a", "attach b") // no object names them: no NAT to send

	out := f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"a"}`, 201)
	if out["ip"] != "10.0.0.2" || out["network"] != "blue" || out["host"] != "h1" {
		t.Fatalf("floating IP %v", out)
	}
	f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"a"}`, 200)
	f.callsAre(t, "nat") // the same again sent nothing
	f.mustDo(t, "PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"a","target_port":80}`, 201)
	f.mustDo(t, "PUT", "/v1/port-forwards/dns", `{"protocol":"udp","host_port":53,"port":"b","host_ip":"192.0.2.9"}`, 201)
	f.callsAre(t, "nat", "nat")
	f.natIs(t, "fip pub 203.0.113.5>a@10.0.0.2 | fwd dns udp/192.0.2.9:53>b@10.0.0.3:53 | fwd web tcp/8080>a@10.0.0.2:80")

	for _, c := range []struct {
		path, body string
		want       int
		msg        string
	}{
		{"/v1/floating-ips/pub2", `{"address":"203.0.113.5","port":"b"}`, 409, `conflict: address 203.0.113.5 is floating IP "pub"'s`},
		{"/v1/floating-ips/pub2", `{"address":"203.0.113.6","port":"a"}`, 409, `conflict: port "a" has floating IP "pub"`},
		{"/v1/floating-ips/pub2", `{"address":"10.0.0.9","port":"b"}`, 409, `conflict: address 10.0.0.9 is in subnet 10.0.0.0/24 of network "blue"`},
		// The port's host refuses its own addresses, and a host_ip
		// not its own, before the store's checks (controller/store
		// tests those).
		{"/v1/floating-ips/pub2", `{"address":"192.0.2.9","port":"b"}`, 409, `conflict: address 192.0.2.9 is one of host h1's own; a port forward shares the host's address`},
		{"/v1/floating-ips/pub2", `{"address":"192.0.2.255","port":"b"}`, 409, `conflict: address 192.0.2.255 is a broadcast address of host h1's subnets`},
		{"/v1/floating-ips/pub2", `{"address":"127.0.0.1","port":"b"}`, 400, ""},
		{"/v1/floating-ips/pub2", `{"address":"203.0.113.6","port":"nope"}`, 404, `not found: port "nope"`},
		{"/v1/port-forwards/web2", `{"host_port":8080,"port":"b"}`, 409, `conflict: host port tcp/8080 is forwarded by "web" (port a)`},
		{"/v1/port-forwards/web2", `{"host_port":8080,"port":"b","host_ip":"198.51.100.1"}`, 409, ""},
		{"/v1/port-forwards/web2", `{"host_port":80,"port":"b","host_ip":"203.0.113.5"}`, 409, `conflict: host_ip 203.0.113.5 is not an address of host h1, the port's`},
		{"/v1/port-forwards/web2", `{"protocol":"udp","host_port":53,"port":"b","host_ip":"8.8.8.8"}`, 409, `conflict: host_ip 8.8.8.8 is not an address of host h1, the port's`},
		{"/v1/port-forwards/web2", `{"host_port":0,"port":"b"}`, 400, ""},
		{"/v1/port-forwards/web2", `{"protocol":"icmp","host_port":1,"port":"b"}`, 400, ""},
	} {
		out := f.mustDo(t, "PUT", c.path, c.body, c.want)
		if c.msg != "" && out["error"] != c.msg {
			t.Errorf("PUT %s %s: %v, want %q", c.path, c.body, out["error"], c.msg)
		}
	}
	f.callsAre(t) // nothing refused reached the backend
	if got := f.storedNAT(t); got != "pub>a dns>b web>a" {
		t.Fatalf("stored %q", got)
	}

	// Replaced: the floating IP moves to b in one change.
	f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.7","port":"b"}`, 200)
	f.callsAre(t, "nat")
	f.natIs(t, "fip pub 203.0.113.7>b@10.0.0.3 | fwd dns udp/192.0.2.9:53>b@10.0.0.3:53 | fwd web tcp/8080>a@10.0.0.2:80")
	f.mustDo(t, "PUT", "/v1/port-forwards/web2", `{"protocol":"udp","host_port":8080,"port":"b"}`, 201)

	list := f.mustDo(t, "GET", "/v1/port-forwards?port=b", "", 200)
	if got := fmt.Sprint(list["port_forwards"]); !strings.Contains(got, "name:dns") || !strings.Contains(got, "name:web2") || strings.Contains(got, "name:web ") {
		t.Fatalf("forwards of b: %s", got)
	}
	f.mustDo(t, "GET", "/v1/floating-ips?port=nope", "", 404)
	f.Fake.Mu.Lock()
	f.Fake.NATCounters = datapath.NATStats{Forwards: []datapath.ForwardStats{{Name: "web", Connections: 3, Packets: 30, Bytes: 3000}}}
	f.Fake.Mu.Unlock()
	stats := f.mustDo(t, "GET", "/v1/port-forwards/web?stats=true", "", 200)
	if got := fmt.Sprint(stats["stats"]); got != "map[bytes:3000 connections:3 packets:30]" {
		t.Fatalf("stats %s", got)
	}
	if got := fmt.Sprint(f.mustDo(t, "GET", "/v1/floating-ips/pub?stats=true", "", 200)["stats"]); got != "map[connections:0]" {
		t.Fatalf("stats of a floating IP without counters: %s", got)
	}

	f.mustDo(t, "DELETE", "/v1/port-forwards/web2", "", 204)
	f.mustDo(t, "DELETE", "/v1/port-forwards/web2", "", 404)
	f.mustDo(t, "DELETE", "/v1/floating-ips/pub", "", 204)
	f.natIs(t, "fwd dns udp/192.0.2.9:53>b@10.0.0.3:53 | fwd web tcp/8080>a@10.0.0.2:80")
}

// TestNATRollback: a NAT the backend refuses leaves the state as it was,
// stored and handed over.
func TestNATRollback(t *testing.T) {
	f := newFixture(t)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap","ip":"10.0.0.2"}`, 201)
	f.mustDo(t, "PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"a"}`, 201)
	f.natIs(t, "fwd web tcp/8080>a@10.0.0.2:8080")
	f.Fake.Mu.Lock()
	f.Fake.FailNAT = controllertest.ErrFakeDatapath
	f.Fake.Mu.Unlock()
	f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"a"}`, 500)
	f.mustDo(t, "PUT", "/v1/port-forwards/web", `{"host_port":8081,"port":"a"}`, 500)
	f.mustDo(t, "DELETE", "/v1/port-forwards/web", "", 500)
	f.Fake.Mu.Lock()
	f.Fake.FailNAT = nil
	f.Fake.Mu.Unlock()
	if got := f.storedNAT(t); got != "web>a" {
		t.Fatalf("stored %q after refusals", got)
	}
	out := f.mustDo(t, "GET", "/v1/port-forwards/web", "", 200)
	if out["host_port"] != 8080.0 {
		t.Fatalf("forward after a refused replace: %v", out)
	}
	f.mustDo(t, "GET", "/v1/floating-ips/pub", "", 404)
	f.natIs(t, "fwd web tcp/8080>a@10.0.0.2:8080")
}

// TestNATGoesWithItsPort: deleting a port deletes its floating IPs and
// forwards, and their rules go before the port does; the host port is
// free for the next.
func TestNATGoesWithItsPort(t *testing.T) {
	f := newFixture(t)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap","ip":"10.0.0.2"}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/b", `{"network":"blue","type":"tap","ip":"10.0.0.3"}`, 201)
	f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"a"}`, 201)
	f.mustDo(t, "PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"a"}`, 201)
	f.mustDo(t, "PUT", "/v1/port-forwards/ssh", `{"host_port":2222,"port":"b","target_port":22}`, 201)
	f.Fake.TakeCalls()
	f.mustDo(t, "DELETE", "/v1/ports/a", "", 204)
	f.callsAre(t, "nat", "detach a")
	f.natIs(t, "fwd ssh tcp/2222>b@10.0.0.3:22")
	f.mustDo(t, "GET", "/v1/floating-ips/pub", "", 404)
	f.mustDo(t, "GET", "/v1/port-forwards/web", "", 404)
	if got := f.storedNAT(t); got != "ssh>b" {
		t.Fatalf("stored %q", got)
	}
	f.mustDo(t, "DELETE", "/v1/ports/b", "", 204)
	f.callsAre(t, "nat", "detach b")
	f.natIs(t, "")
	f.mustDo(t, "PUT", "/v1/ports/c", `{"network":"blue","type":"tap"}`, 201)
	f.mustDo(t, "PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"c"}`, 201)
	f.mustDo(t, "DELETE", "/v1/networks/blue", "", 409)
	f.mustDo(t, "PUT", "/v1/networks/red", `{"subnet":"203.0.113.0/24"}`, 201) // no address of red is taken
	f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"198.51.100.5","port":"c"}`, 201)
	f.mustDo(t, "PUT", "/v1/networks/green", `{"subnet":"198.51.100.0/24"}`, 409)
}

// TestNATAtStart: a restarted daemon hands Prune the NAT of the stored
// state — equal to the last run's, so that a backend holding it sends
// nothing — and a floating address that is the host's own is refused.
func TestNATAtStart(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	own := netip.MustParseAddr("192.0.2.1")
	local := controller.WithLocalAddrs(func() ([]netip.Addr, error) { return []netip.Addr{own}, nil })
	fake := controllertest.NewFake()
	f := startFixtureOn(t, st, fake, fake, local)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap","ip":"10.0.0.2"}`, 201)
	out := f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"192.0.2.1","port":"a"}`, 409)
	if !strings.Contains(fmt.Sprint(out["error"]), "one of host h1's own") {
		t.Fatalf("%v", out)
	}
	f.mustDo(t, "PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"a","host_ip":"192.0.2.1"}`, 201)
	f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"a"}`, 201)
	last := f.Fake.LastNAT()
	f.Stop()

	fake2 := controllertest.NewFake()
	g := startFixtureOn(t, st, fake2, fake2, local)
	g.Fake.Mu.Lock()
	pruned := g.Fake.Pruned.NAT
	g.Fake.Mu.Unlock()
	if !pruned.Equal(last) || natText(pruned) != "fip pub 203.0.113.5>a@10.0.0.2 | fwd web tcp/192.0.2.1:8080>a@10.0.0.2:8080" {
		t.Fatalf("pruned with %q, the last run's was %q", natText(pruned), natText(last))
	}
	g.Stop()

	// The host has taken the floating address since: the floating IP is
	// left out, not enforced, and the forward stays.
	fake3 := controllertest.NewFake()
	h := startFixtureOn(t, st, fake3, fake3, controller.WithLocalAddrs(func() ([]netip.Addr, error) {
		return []netip.Addr{own, netip.MustParseAddr("203.0.113.5")}, nil
	}))
	h.Fake.Mu.Lock()
	pruned = h.Fake.Pruned.NAT
	h.Fake.Mu.Unlock()
	if got := natText(pruned); got != "fwd web tcp/192.0.2.1:8080>a@10.0.0.2:8080" {
		t.Fatalf("pruned with %q", got)
	}
	h.mustDo(t, "GET", "/v1/floating-ips/pub", "", 200) // still stored
}

// TestNATNeedsATranslator: a backend that translates nothing stores no
// floating IP or forward (501).
func TestNATNeedsATranslator(t *testing.T) {
	f := &fixture{controllertest.NewUnenforcingFixture(t)}
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap"}`, 201)
	out := f.mustDo(t, "PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"a"}`, 501)
	if !strings.Contains(fmt.Sprint(out["error"]), "does not enforce floating IPs and port forwards") {
		t.Fatalf("%v", out)
	}
	f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"a"}`, 501)
	if got := f.storedNAT(t); got != "" {
		t.Fatalf("stored %q", got)
	}
}

// TestClusterNAT: a host enforces the floating IPs and forwards of its own
// ports only, whichever host stored them; forwards of ports on different
// hosts take the same host port.
func TestClusterNAT(t *testing.T) {
	etcd := testbed.StartEtcd(t, 1)
	h1 := startClusterHost(t, etcd, "h1", "192.0.2.1")
	h2 := startClusterHost(t, etcd, "h2", "192.0.2.2")
	natOn := func(h *clusterHost, want string) {
		t.Helper()
		waitUntil(t, h.C.HostName()+" nat "+want, func() bool { return natText(h.Fake.LastNAT()) == want })
	}
	h1.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24"}`, 201)
	waitUntil(t, "blue on h2", func() bool { _, err := h2.C.Network("blue"); return err == nil })
	h1.mustDo(t, "PUT", "/v1/ports/a1", `{"network":"blue","type":"tap","ip":"10.1.0.11"}`, 201)
	h2.mustDo(t, "PUT", "/v1/ports/a2", `{"network":"blue","type":"tap","ip":"10.1.0.12"}`, 201)
	waitUntil(t, "a2 on h1", func() bool { _, err := h1.C.Port("a2"); return err == nil })

	// Stored by h1, for h2's port: h2 enforces it, h1 does not.
	h1.mustDo(t, "PUT", "/v1/port-forwards/web2", `{"host_port":8080,"port":"a2"}`, 201)
	h1.mustDo(t, "PUT", "/v1/port-forwards/web1", `{"host_port":8080,"port":"a1"}`, 201) // another host: no conflict
	h2.mustDo(t, "PUT", "/v1/port-forwards/web3", `{"host_port":8080,"port":"a1"}`, 409) // h1's tcp/8080 is web1's
	natOn(h1, "fwd web1 tcp/8080>a1@10.1.0.11:8080")
	natOn(h2, "fwd web2 tcp/8080>a2@10.1.0.12:8080")
	h2.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"a1"}`, 201)
	natOn(h1, "fip pub 203.0.113.5>a1@10.1.0.11 | fwd web1 tcp/8080>a1@10.1.0.11:8080")
	out := map[string]any{}
	waitUntil(t, "pub on h1", func() bool { _, out = h1.Do(t, "GET", "/v1/floating-ips/pub", ""); return out["host"] == "h1" })

	// h2's port goes: its forward with it, on every host.
	h2.mustDo(t, "DELETE", "/v1/ports/a2", "", 204)
	natOn(h2, "")
	waitUntil(t, "web2 gone on h1", func() bool { code, _ := h1.Do(t, "GET", "/v1/port-forwards/web2", ""); return code == 404 })
	h1.mustDo(t, "DELETE", "/v1/floating-ips/pub", "", 204)
	natOn(h1, "fwd web1 tcp/8080>a1@10.1.0.11:8080")
}

// TestTraceFromOutside: a trace from an outside address runs the host's
// NAT first and hands the tracer the translated packet; one no rule
// takes is the host's.
func TestTraceFromOutside(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fake := controllertest.NewFake()
	f := startFixtureOn(t, st, fake, fake, controller.WithLocalAddrs(func() ([]netip.Addr, error) {
		// 10.0.0.1, blue's gateway, is the host's as on Linux.
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.0.1")}, nil
	}))
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap","ip":"10.0.0.2"}`, 201)
	f.mustDo(t, "PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"a","target_port":80}`, 201)
	f.mustDo(t, "PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"a"}`, 201)
	traced := func() string {
		f.Fake.Mu.Lock()
		defer f.Fake.Mu.Unlock()
		q := f.Fake.Traced
		f.Fake.Traced = v1.Query{}
		return fmt.Sprintf("%s>%s:%d %s", q.FromAddress, q.To, q.DPort, q.Proto)
	}
	for _, c := range []struct{ query, owner, action, traced string }{
		{"from_address=198.51.100.2&to=192.0.2.1&proto=tcp&dport=8080", "port-forward web", "dnat to 10.0.0.2:80", "198.51.100.2>10.0.0.2:80 tcp"},
		{"from_address=198.51.100.2&to=203.0.113.5", "floating-ip pub", "dnat to 10.0.0.2", "198.51.100.2>10.0.0.2:0 icmp"},
		{"from_address=198.51.100.2&to=203.0.113.5&proto=udp&dport=53", "floating-ip pub", "dnat to 10.0.0.2:53", "198.51.100.2>10.0.0.2:53 udp"},
		// Not translated: the host's own, loopback, and a network's
		// address, which the rules skip.
		{"from_address=198.51.100.2&to=192.0.2.1&proto=tcp&dport=22", "pipeline", "no floating IP or port forward of this host's ports takes it", "invalid IP>invalid IP:0 "},
		{"from_address=198.51.100.2&to=127.0.0.1&proto=tcp&dport=8080", "pipeline", "no floating IP or port forward of this host's ports takes it", "invalid IP>invalid IP:0 "},
		{"from_address=198.51.100.2&to=10.0.0.1&proto=tcp&dport=8080", "pipeline", "no floating IP or port forward of this host's ports takes it", "invalid IP>invalid IP:0 "},
	} {
		out := f.mustDo(t, "GET", "/v1/trace?"+c.query, "", 200)
		step := out["steps"].([]any)[0].(map[string]any)
		if step["owner"] != c.owner || fmt.Sprint(step["actions"]) != "["+c.action+"]" {
			t.Errorf("%s: first step %v", c.query, step)
		}
		if got := traced(); got != c.traced {
			t.Errorf("%s: traced %s, want %s", c.query, got, c.traced)
		}
		if c.owner == "pipeline" && out["verdict"] != v1.ToHost {
			t.Errorf("%s: verdict %v", c.query, out["verdict"])
		}
	}
	f.mustDo(t, "GET", "/v1/trace?from=a&from_address=198.51.100.2&to=203.0.113.5", "", 400)
	f.mustDo(t, "GET", "/v1/trace?from_address=198.51.100.2&to=203.0.113.5&src=10.0.0.9", "", 400)
}

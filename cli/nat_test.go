package cli

import (
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// natRoutes serves floating IPs and port forwards from memory: validation by
// model, the port's existence (404) and the conflicts of one host (409), as
// the daemon answers them (docs/API.md).
func (f *fakeDaemon) natRoutes(mux *http.ServeMux) {
	// A trace answers with its query as the packet: what vnetctl sent.
	mux.HandleFunc("GET /v1/trace", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, v1.Result{Backend: "ovs", Packet: r.URL.RawQuery, Verdict: v1.Delivered, Summary: "delivered"})
	})
	mux.HandleFunc("GET /v1/floating-ips", func(w http.ResponseWriter, r *http.Request) {
		out := []v1.FloatingIP{}
		for _, o := range sortedValues(f.fips) {
			if p := r.URL.Query().Get("port"); p == "" || p == o.Port {
				out = append(out, o.View(f.modelPort(o.Port)))
			}
		}
		reply(w, http.StatusOK, v1.FloatingIPList{FloatingIPs: out})
	})
	mux.HandleFunc("GET /v1/port-forwards", func(w http.ResponseWriter, r *http.Request) {
		out := []v1.PortForward{}
		for _, o := range sortedValues(f.fwds) {
			if p := r.URL.Query().Get("port"); p == "" || p == o.Port {
				out = append(out, o.View(f.modelPort(o.Port)))
			}
		}
		reply(w, http.StatusOK, v1.PortForwardList{PortForwards: out})
	})
	mux.HandleFunc("GET /v1/floating-ips/{name}", func(w http.ResponseWriter, r *http.Request) {
		o, ok := f.fips[r.PathValue("name")]
		if !ok {
			fail(w, http.StatusNotFound, `not found: floating IP "`+r.PathValue("name")+`"`)
			return
		}
		v := o.View(f.modelPort(o.Port))
		if r.URL.Query().Get("stats") == "true" {
			v.Stats = &v1.NATStats{Connections: 3, ConnectionsOut: 1}
		}
		reply(w, http.StatusOK, v)
	})
	mux.HandleFunc("GET /v1/port-forwards/{name}", func(w http.ResponseWriter, r *http.Request) {
		o, ok := f.fwds[r.PathValue("name")]
		if !ok {
			fail(w, http.StatusNotFound, `not found: port forward "`+r.PathValue("name")+`"`)
			return
		}
		v := o.View(f.modelPort(o.Port))
		// A forward of the remote port "far" has no counters here.
		if r.URL.Query().Get("stats") == "true" && o.Port != "far" {
			v.Stats = &v1.NATStats{Connections: 2, Packets: 12, Bytes: 1500}
		}
		reply(w, http.StatusOK, v)
	})
	mux.HandleFunc("PUT /v1/floating-ips/{name}", func(w http.ResponseWriter, r *http.Request) {
		var spec v1.FloatingIPSpec
		if !decode(w, r, &spec) {
			return
		}
		o, err := model.NewFloatingIP(r.PathValue("name"), spec)
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if _, ok := f.ports[o.Port]; !ok {
			fail(w, http.StatusNotFound, `not found: port "`+o.Port+`"`)
			return
		}
		for _, other := range f.fips {
			if other.Name != o.Name && other.Address == o.Address {
				fail(w, http.StatusConflict, fmt.Sprintf("conflict: address %s is floating IP %q", o.Address, other.Name))
				return
			}
		}
		_, existed := f.fips[o.Name]
		f.fips[o.Name] = o
		reply(w, putStatus(existed), o.View(f.modelPort(o.Port)))
	})
	mux.HandleFunc("PUT /v1/port-forwards/{name}", func(w http.ResponseWriter, r *http.Request) {
		var spec v1.PortForwardSpec
		if !decode(w, r, &spec) {
			return
		}
		o, err := model.NewPortForward(r.PathValue("name"), spec)
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if _, ok := f.ports[o.Port]; !ok {
			fail(w, http.StatusNotFound, `not found: port "`+o.Port+`"`)
			return
		}
		for _, other := range f.fwds {
			if other.Name != o.Name && other.Overlaps(o) && f.ports[other.Port].Host == f.ports[o.Port].Host {
				fail(w, http.StatusConflict, fmt.Sprintf("conflict: host port %s is forwarded by %q", o, other.Name))
				return
			}
		}
		_, existed := f.fwds[o.Name]
		f.fwds[o.Name] = o
		reply(w, putStatus(existed), o.View(f.modelPort(o.Port)))
	})
}

// putStatus is a PUT's answer: 200 for an object replaced or unchanged,
// 201 for a new one.
func putStatus(existed bool) int {
	if existed {
		return http.StatusOK
	}
	return http.StatusCreated
}

// modelPort is the fake's port as model has it, for the NAT objects' views.
func (f *fakeDaemon) modelPort(name string) model.Port {
	p := f.ports[name]
	ip, _ := netip.ParsePrefix(p.IP)
	return model.Port{Name: p.Name, Network: p.Network, IP: ip.Addr(), Host: p.Host}
}

func TestNATCommands(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "floating-ip", "list"), 0, "", "No floating-ips found.\n")
	check(t, f.vnetctl(t, nil, "port-forward", "list"), 0, "", "No port-forwards found.\n")
	check(t, f.vnetctl(t, nil, "network", "create", "blue", "--subnet", "10.10.0.0/24"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "web1", "--network", "blue", "--netns", "web1"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "port", "create", "web2", "--network", "blue", "--netns", "web2"), 0, "*", "")
	f.mu.Lock()
	far := f.ports["web2"]
	far.Name, far.Host, far.IP = "far", "h2", "10.10.0.9/24"
	f.ports["far"] = far
	f.mu.Unlock()

	// Floating IPs.
	check(t, f.vnetctl(t, nil, "fip", "create", "pub"), ExitUsage, "", `required flag(s) "address", "port" not set`)
	check(t, f.vnetctl(t, nil, "fip", "create", "pub", "--address", "10.0.0.300", "--port", "web1"), ExitError, "", `Error: invalid: address "10.0.0.300" is not an IPv4 address`)
	check(t, f.vnetctl(t, nil, "fip", "create", "pub", "--address", "203.0.113.50", "--port", "nope"), ExitNotFound, "", `not found: port "nope" (HTTP 404)`)
	check(t, f.vnetctl(t, nil, "fip", "create", "pub", "--address", "203.0.113.50", "--port", "web1"), 0, "floating-ip pub created (203.0.113.50 -> web1 10.10.0.2)\n", "")
	check(t, f.vnetctl(t, nil, "fip", "create", "pub", "--address", "203.0.113.50", "--port", "web1"), 0, "floating-ip pub unchanged (203.0.113.50 -> web1 10.10.0.2)\n", "")
	check(t, f.vnetctl(t, nil, "fip", "create", "pub", "--address", "203.0.113.50", "--port", "web2"), 0, "floating-ip pub replaced (203.0.113.50 -> web2 10.10.0.3)\n", "")
	check(t, f.vnetctl(t, nil, "fip", "create", "pub2", "--address", "203.0.113.50", "--port", "web1"), ExitConflict, "", `conflict: address 203.0.113.50 is floating IP "pub"`)
	check(t, f.vnetctl(t, nil, "fip", "create", "back", "--address", "203.0.113.51", "--port", "web1", "-o", "name"), 0, "floating-ip/back\n", "")
	check(t, f.vnetctl(t, nil, "fip", "ls"), 0, ""+
		"NAME   ADDRESS        PORT   IP          NETWORK   HOST\n"+
		"back   203.0.113.51   web1   10.10.0.2   blue      -\n"+
		"pub    203.0.113.50   web2   10.10.0.3   blue      -\n", "")
	check(t, f.vnetctl(t, nil, "fip", "list", "--port", "web2", "-o", "name"), 0, "floating-ip/pub\n", "")
	check(t, f.vnetctl(t, nil, "fip", "show", "pub", "--stats"), 0, ""+
		"NAME   ADDRESS        PORT   IP          NETWORK   HOST   CONNECTIONS-IN   CONNECTIONS-OUT\n"+
		"pub    203.0.113.50   web2   10.10.0.3   blue      -      3                1\n", "")
	check(t, f.vnetctl(t, nil, "fip", "get", "pub", "-o", "json"), 0,
		`{
  "name": "pub",
  "address": "203.0.113.50",
  "port": "web2",
  "ip": "10.10.0.3",
  "network": "blue"
}
`, "")

	// Port forwards.
	check(t, f.vnetctl(t, nil, "pf", "create", "web", "--port", "web1"), ExitUsage, "", `required flag(s) "host-port" not set`)
	check(t, f.vnetctl(t, nil, "pf", "create", "web", "--port", "web1", "--host-port", "8080", "--protocol", "sctp"), ExitError, "", "protocol must be tcp or udp")
	check(t, f.vnetctl(t, nil, "pf", "create", "web", "--port", "web1", "--host-port", "8080", "--target-port", "80"), 0,
		"port-forward web created (tcp/8080 -> web1 10.10.0.2:80)\n", "")
	check(t, f.vnetctl(t, nil, "pf", "create", "web", "--port", "web1", "--host-port", "8080", "--target-port", "80"), 0,
		"port-forward web unchanged (tcp/8080 -> web1 10.10.0.2:80)\n", "")
	check(t, f.vnetctl(t, nil, "pf", "create", "alt", "--port", "web2", "--host-port", "8080", "--host-ip", "192.0.2.9"), ExitConflict, "",
		`conflict: host port tcp/192.0.2.9:8080 is forwarded by "web"`)
	check(t, f.vnetctl(t, nil, "pf", "create", "dns", "--port", "web2", "--host-port", "53", "--protocol", "udp", "--host-ip", "192.0.2.9"), 0,
		"port-forward dns created (udp/192.0.2.9:53 -> web2 10.10.0.3:53)\n", "")
	// Forwards of ports on different hosts never conflict.
	check(t, f.vnetctl(t, nil, "pf", "create", "remote", "--port", "far", "--host-port", "8080"), 0, "*", "")
	check(t, f.vnetctl(t, nil, "pf", "create", "web", "--port", "web1", "--host-port", "8081", "--target-port", "80"), 0,
		"port-forward web replaced (tcp/8081 -> web1 10.10.0.2:80)\n", "")
	check(t, f.vnetctl(t, nil, "pf", "ls"), 0, ""+
		"NAME     PROTOCOL   HOST-PORT      PORT   TARGET           NETWORK   HOST\n"+
		"dns      udp        192.0.2.9:53   web2   10.10.0.3:53     blue      -\n"+
		"remote   tcp        8080           far    10.10.0.9:8080   blue      h2\n"+
		"web      tcp        8081           web1   10.10.0.2:80     blue      -\n", "")
	check(t, f.vnetctl(t, nil, "pf", "get", "web", "--stats"), 0, ""+
		"NAME   PROTOCOL   HOST-PORT   PORT   TARGET         NETWORK   HOST   CONNECTIONS   PACKETS   BYTES\n"+
		"web    tcp        8081        web1   10.10.0.2:80   blue      -      2             12        1500\n", "")
	check(t, f.vnetctl(t, nil, "pf", "get", "remote", "--stats"), 0, ""+
		"NAME     PROTOCOL   HOST-PORT   PORT   TARGET           NETWORK   HOST   CONNECTIONS   PACKETS   BYTES\n"+
		"remote   tcp        8080        far    10.10.0.9:8080   blue      h2     -             -         -\n", "")
	check(t, f.vnetctl(t, nil, "pf", "get", "nope"), ExitNotFound, "", `Error: not found: port forward "nope" (HTTP 404)`)

	// Deleting a port takes its floating IPs and forwards with it.
	check(t, f.vnetctl(t, nil, "port", "delete", "web1"), 0, "port web1 deleted\n", "")
	check(t, f.vnetctl(t, nil, "fip", "list", "-o", "name"), 0, "floating-ip/pub\n", "")
	check(t, f.vnetctl(t, nil, "pf", "list", "--port", "web1"), 0, "", "No port-forwards found.\n")
	check(t, f.vnetctl(t, nil, "pf", "delete", "dns", "remote"), 0, "port-forward dns deleted\nport-forward remote deleted\n", "")
	check(t, f.vnetctl(t, nil, "fip", "rm", "pub", "back"), ExitNotFound, "floating-ip pub deleted\n", `not found: floating ip "back"`)
	if len(f.fips) != 0 || len(f.fwds) != 0 {
		t.Fatalf("left: %v %v", f.fips, f.fwds)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(f.ports)), []string{"far", "web2"}) {
		t.Fatalf("ports %v", f.ports)
	}
}

func TestTraceFromAddress(t *testing.T) {
	f := newFakeDaemon(t)
	check(t, f.vnetctl(t, nil, "trace", "--to", "203.0.113.50"), ExitUsage, "", "at least one of the flags in the group [from from-address] is required")
	check(t, f.vnetctl(t, nil, "trace", "--from", "web1", "--from-address", "198.51.100.2", "--to", "203.0.113.50"), ExitUsage, "", "none of the others can be")
	check(t, f.vnetctl(t, nil, "trace", "--from-address", "198.51.100.2", "--src", "10.0.0.1", "--to", "203.0.113.50"), ExitUsage, "", "none of the others can be")
	check(t, f.vnetctl(t, nil, "trace", "--from-address", "nope", "--to", "203.0.113.50"), ExitUsage, "", `--from-address "nope": want an IPv4 address`)
	r := f.vnetctl(t, nil, "trace", "--from-address", "198.51.100.2", "--to", "203.0.113.50", "--proto", "tcp", "--dport", "80")
	if r.code != 0 || !strings.Contains(r.out, "Packet:  dport=80&from_address=198.51.100.2&proto=tcp&to=203.0.113.50\n") {
		t.Fatalf("exit %d:\n%s%s", r.code, r.out, r.errOut)
	}
}

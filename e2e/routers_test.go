package e2e

import (
	"testing"
)

// TestRouters proves the router semantics of docs/API.md § Routers with real
// packets on both backends: a router replaced live (the old pair stops
// routing as the new one starts), two routers sharing a network (routing is
// not transitive across them), and deleting one router leaving the other's
// routes in place. The ports are made once, before any router: every step
// is a change under running workloads, and each step checks that ports of
// one network still reach each other.
func TestRouters(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) { runRouters(t, bc) })
	}
}

// routerNets are the networks under test; "a" has two ports so that
// same-network forwarding is checked at every step.
var routerNets = []netSpec{
	{"a", "10.74.0.0/24", "10.74.0.1", false},
	{"b", "10.75.0.0/24", "10.75.0.1", false},
	{"c", "10.76.0.0/24", "10.76.0.1", false},
}

func runRouters(t *testing.T, bc backendCase) {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	d := startDaemon(t, hostNS, args...)
	for _, n := range routerNets {
		d.must("PUT", "/v1/networks/"+n.name, map[string]any{"subnet": n.subnet}, 201, nil)
	}
	ports := []*wPort{
		{name: "pa", network: "a", ip: "10.74.0.11"},
		{name: "pa2", network: "a", ip: "10.74.0.12"},
		{name: "pb", network: "b", ip: "10.75.0.11"},
		{name: "pc", network: "c", ip: "10.76.0.11"},
	}
	var workloads []string
	for _, p := range ports {
		p.ns = newNetns(t, "vnt-"+p.name+"-")
		d.must("PUT", "/v1/ports/"+p.name, map[string]string{"network": p.network, "netns": p.ns, "ifname": "eth0", "ip": p.ip}, 201, &p.view)
		workloads = append(workloads, p.ns)
	}

	// Each step is a change and the network pairs that route after it.
	steps := []struct {
		name   string
		change func()
		routes [][2]string
	}{
		{"r1 [a,b] created", func() { d.must("PUT", "/v1/routers/r1", `{"networks":["a","b"]}`, 201, nil) },
			[][2]string{{"a", "b"}}},
		{"r1 replaced by [a,c]", func() { d.must("PUT", "/v1/routers/r1", `{"networks":["a","c"]}`, 200, nil) },
			[][2]string{{"a", "c"}}},
		{"r1 back to [a,b], r2 [b,c] created", func() {
			d.must("PUT", "/v1/routers/r1", `{"networks":["b","a"]}`, 200, nil)
			d.must("PUT", "/v1/routers/r2", `{"networks":["b","c"]}`, 201, nil)
		}, [][2]string{{"a", "b"}, {"b", "c"}}},
		{"r1 deleted", func() { d.must("DELETE", "/v1/routers/r1", nil, 204, nil) },
			[][2]string{{"b", "c"}}},
		{"r2 deleted", func() { d.must("DELETE", "/v1/routers/r2", nil, 204, nil) },
			nil},
	}
	for _, s := range steps {
		s.change()
		checkRoutes(t, s.name, ports, s.routes)
	}

	for _, p := range ports {
		d.must("DELETE", "/v1/ports/"+p.name, nil, 204, nil)
	}
	for _, n := range routerNets {
		d.must("DELETE", "/v1/networks/"+n.name, nil, 204, nil)
	}
	d.stop()
	assertNothingLeft(t, hostNS, box, d.stateDir, workloads...)
}

// checkRoutes pings every port and every gateway from every port: a target
// answers exactly when it is in the sender's network or a router joins the
// two networks directly (routes lists those pairs); a routed reply has
// crossed one hop.
func checkRoutes(t *testing.T, step string, ports []*wPort, routes [][2]string) {
	t.Helper()
	routed := func(x, y string) bool {
		for _, r := range routes {
			if (r[0] == x && r[1] == y) || (r[0] == y && r[1] == x) {
				return true
			}
		}
		return false
	}
	nsOf, ipOf := map[string]string{}, map[string]string{}
	for _, p := range ports {
		nsOf[p.name], ipOf[p.name] = p.ns, p.ip
	}
	for _, n := range routerNets {
		ipOf["gw-"+n.name] = n.gateway
	}
	var probes []probe
	for _, a := range ports {
		for _, b := range ports {
			if a == b {
				continue
			}
			pr := probe{from: a.name, to: b.name, want: a.network == b.network || routed(a.network, b.network)}
			switch {
			case !pr.want:
			case a.network == b.network:
				pr.wantTTL = 64
			default:
				pr.wantTTL = 63
			}
			probes = append(probes, pr)
		}
		for _, n := range routerNets {
			probes = append(probes, probe{from: a.name, to: "gw-" + n.name, want: a.network == n.name || routed(a.network, n.name)})
		}
	}
	runProbes(t, step, probes, nsOf, ipOf)
}

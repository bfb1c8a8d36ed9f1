package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// fakeDaemon answers the REST API from memory, enough of it to exercise the
// CLI's rendering and error mapping without a datapath. The real daemon is
// exercised by e2e/cli_test.go.
type fakeDaemon struct {
	mu       sync.Mutex
	token    string // when set, /v1 wants "Bearer <token>"
	notReady string // when set, /readyz and every /v1 write answer 503 with it
	networks map[string]model.Network
	routers  map[string]model.Router
	ports    map[string]v1.Port
	groups   map[string]model.SecurityGroup
	fips     map[string]model.FloatingIP
	fwds     map[string]model.PortForward
	srv      *httptest.Server
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	f := &fakeDaemon{networks: map[string]model.Network{}, routers: map[string]model.Router{}, ports: map[string]v1.Port{}, groups: map[string]model.SecurityGroup{},
		fips: map[string]model.FloatingIP{}, fwds: map[string]model.PortForward{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if f.notReady != "" {
			fail(w, http.StatusServiceUnavailable, f.notReady)
			return
		}
		reply(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, map[string]any{"backend": "ovs", "bridge": "br-vnet", "datapath_type": "netdev", "version": "v1.2.3", "openflow_connected": true})
	})
	mux.HandleFunc("GET /v1/networks", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, map[string]any{"networks": sortedValues(f.networks)})
	})
	mux.HandleFunc("GET /v1/routers", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, map[string]any{"routers": sortedValues(f.routers)})
	})
	mux.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		ports := sortedValues(f.ports)
		if net := r.URL.Query().Get("network"); net != "" {
			if _, ok := f.networks[net]; !ok {
				fail(w, http.StatusNotFound, `not found: network "`+net+`"`)
				return
			}
			ports = slices.DeleteFunc(ports, func(p v1.Port) bool { return p.Network != net })
		}
		reply(w, http.StatusOK, map[string]any{"ports": ports})
	})
	get := func(kind string, find func(string) (any, bool)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if obj, ok := find(r.PathValue("name")); ok {
				reply(w, http.StatusOK, obj)
				return
			}
			fail(w, http.StatusNotFound, "not found: "+kind+` "`+r.PathValue("name")+`"`)
		}
	}
	mux.HandleFunc("GET /v1/networks/{name}", get("network", func(n string) (any, bool) { v, ok := f.networks[n]; return v, ok }))
	mux.HandleFunc("GET /v1/routers/{name}", get("router", func(n string) (any, bool) { v, ok := f.routers[n]; return v, ok }))
	mux.HandleFunc("GET /v1/ports/{name}", get("port", func(n string) (any, bool) { v, ok := f.ports[n]; return v, ok }))
	mux.HandleFunc("GET /v1/security-groups", func(w http.ResponseWriter, _ *http.Request) {
		gs := []v1.SecurityGroup{}
		for _, g := range sortedValues(f.groups) {
			gs = append(gs, f.groupView(g))
		}
		reply(w, http.StatusOK, map[string]any{"security_groups": gs})
	})
	mux.HandleFunc("GET /v1/security-groups/{name}", func(w http.ResponseWriter, r *http.Request) {
		g, ok := f.groups[r.PathValue("name")]
		if !ok {
			fail(w, http.StatusNotFound, `not found: security group "`+r.PathValue("name")+`"`)
			return
		}
		v := f.groupView(g)
		if r.URL.Query().Get("stats") == "true" {
			// Rule i allowed i+1 packets of 100 bytes, a made-up pattern.
			for i := range v.Rules {
				v.Hits = append(v.Hits, v1.RuleHits{Rule: i, Packets: uint64(i + 1), Bytes: uint64(100 * (i + 1))})
			}
		}
		reply(w, http.StatusOK, v)
	})
	mux.HandleFunc("PUT /v1/security-groups/{name}", f.putSecurityGroup)
	mux.HandleFunc("PUT /v1/networks/{name}", f.putNetwork)
	mux.HandleFunc("PUT /v1/routers/{name}", f.putRouter)
	mux.HandleFunc("PUT /v1/ports/{name}", f.putPort)
	mux.HandleFunc("DELETE /v1/{kind}/{name}", f.delete)
	f.natRoutes(mux)

	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.token != "" && strings.HasPrefix(r.URL.Path, "/v1/") && r.Header.Get("Authorization") != "Bearer "+f.token {
			fail(w, http.StatusUnauthorized, "unauthorized: missing or wrong bearer token")
			return
		}
		if f.notReady != "" && r.Method != http.MethodGet {
			fail(w, http.StatusServiceUnavailable, "backend not ready: "+f.notReady)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDaemon) putNetwork(w http.ResponseWriter, r *http.Request) {
	var spec v1.NetworkSpec
	if !decode(w, r, &spec) {
		return
	}
	n, err := model.NewNetwork(r.PathValue("name"), spec)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if old, ok := f.networks[n.Name]; ok {
		if !old.SameImmutable(n) {
			fail(w, http.StatusConflict, `conflict: network "`+n.Name+`" exists with a different spec`)
			return
		}
		// Its DHCP fields change in place, as the daemon's do.
		n.ID = old.ID
		f.networks[n.Name] = n
		reply(w, http.StatusOK, n)
		return
	}
	n.ID = len(f.networks) + 1
	f.networks[n.Name] = n
	reply(w, http.StatusCreated, n)
}

func (f *fakeDaemon) putRouter(w http.ResponseWriter, r *http.Request) {
	var spec v1.RouterSpec
	if !decode(w, r, &spec) {
		return
	}
	rt, err := model.NewRouter(r.PathValue("name"), spec)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	status := http.StatusCreated
	if old, ok := f.routers[rt.Name]; ok {
		rt.ID, status = old.ID, http.StatusOK
	} else {
		rt.ID = len(f.routers) + 1
	}
	f.routers[rt.Name] = rt
	reply(w, status, rt)
}

func (f *fakeDaemon) putPort(w http.ResponseWriter, r *http.Request) {
	var spec v1.PortSpec
	if !decode(w, r, &spec) {
		return
	}
	n, ok := f.networks[spec.Network]
	if !ok {
		fail(w, http.StatusNotFound, `not found: network "`+spec.Network+`"`)
		return
	}
	for _, g := range spec.SecurityGroups {
		if _, ok := f.groups[g]; !ok {
			fail(w, http.StatusNotFound, `not found: security group "`+g+`"`)
			return
		}
	}
	groups, err := model.NewGroupList(spec.SecurityGroups)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	name := r.PathValue("name")
	if old, ok := f.ports[name]; ok {
		// The groups change in place; of the rest only the address is
		// compared, as the daemon would.
		if spec.IP != "" && spec.IP+"/24" != old.IP {
			fail(w, http.StatusConflict, `conflict: port "`+name+`" exists with a different spec`)
			return
		}
		old.SecurityGroups = groups.Names()
		old.Configure = nil
		if spec.Configure != nil && !*spec.Configure {
			old.Configure = spec.Configure
		}
		f.ports[name] = old
		reply(w, http.StatusOK, old)
		return
	}
	p := model.Port{Name: name, Network: n.Name, Type: cmp.Or(spec.Type, v1.PortVeth), Netns: spec.Netns, Ifname: cmp.Or(spec.Ifname, "eth0"),
		MAC: cmp.Or(spec.MAC, model.PortMAC(name)), HostIfname: model.HostIfname(name), Ofport: len(f.ports) + 1}
	p.IP = n.Gateway.Next()
	for range f.ports {
		p.IP = p.IP.Next()
	}
	if spec.IP != "" {
		p.IP = netip.MustParseAddr(spec.IP)
	}
	if p.Type == v1.PortTap {
		p.HostIfname = p.Ifname
	}
	p.SecurityGroups = groups
	p.NoConfigure = spec.Configure != nil && !*spec.Configure
	v := p.View(n)
	v.DefaultRoute = spec.DefaultRoute
	v.Status = v1.PortForwarding
	if name == "down1" {
		v.Status, v.StatusReason, v.StatusDetail = v1.PortDown, "netns_gone", "netns down1: network namespace does not exist"
	}
	f.ports[name] = v
	reply(w, http.StatusCreated, f.ports[name])
}

func (f *fakeDaemon) putSecurityGroup(w http.ResponseWriter, r *http.Request) {
	var spec v1.SecurityGroupSpec
	if !decode(w, r, &spec) {
		return
	}
	g, err := model.NewSecurityGroup(r.PathValue("name"), spec)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, ref := range g.References() {
		if _, ok := f.groups[ref]; !ok {
			fail(w, http.StatusNotFound, `not found: security group "`+ref+`"`)
			return
		}
	}
	status := http.StatusCreated
	if old, ok := f.groups[g.Name]; ok {
		g.ID, status = old.ID, http.StatusOK
	} else {
		g.ID = len(f.groups) + 1
	}
	f.groups[g.Name] = g
	reply(w, status, f.groupView(g))
}

// groupView is g as the daemon shows it, with the ports and groups naming it.
func (f *fakeDaemon) groupView(g model.SecurityGroup) v1.SecurityGroup {
	ports, refs := []string{}, []string{}
	for _, p := range sortedValues(f.ports) {
		if slices.Contains(p.SecurityGroups, g.Name) {
			ports = append(ports, p.Name)
		}
	}
	for _, o := range sortedValues(f.groups) {
		if slices.Contains(o.References(), g.Name) {
			refs = append(refs, o.Name)
		}
	}
	return g.View(ports, refs)
}

func (f *fakeDaemon) delete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var found bool
	switch r.PathValue("kind") {
	case "networks":
		_, found = f.networks[name]
		delete(f.networks, name)
	case "routers":
		_, found = f.routers[name]
		delete(f.routers, name)
	case "ports":
		_, found = f.ports[name]
		delete(f.ports, name)
		// The cascade of docs/API.md: a port's floating IPs and forwards go with it.
		maps.DeleteFunc(f.fips, func(_ string, o model.FloatingIP) bool { return o.Port == name })
		maps.DeleteFunc(f.fwds, func(_ string, o model.PortForward) bool { return o.Port == name })
	case "floating-ips":
		_, found = f.fips[name]
		delete(f.fips, name)
	case "port-forwards":
		_, found = f.fwds[name]
		delete(f.fwds, name)
	case "security-groups":
		if _, found = f.groups[name]; found && len(f.groupView(f.groups[name]).Ports) > 0 {
			fail(w, http.StatusConflict, `conflict: security group "`+name+`" is used by ports `+strings.Join(f.groupView(f.groups[name]).Ports, ", "))
			return
		}
		delete(f.groups, name)
	}
	if !found {
		kind := strings.ReplaceAll(strings.TrimSuffix(r.PathValue("kind"), "s"), "-", " ")
		fail(w, http.StatusNotFound, "not found: "+kind+` "`+name+`"`)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "invalid: "+err.Error())
		return false
	}
	return true
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	reply(w, status, map[string]string{"error": msg})
}

func sortedValues[T any](m map[string]T) []T {
	out := make([]T, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// result is one vnetctl run.
type result struct {
	code        int
	out, errOut string
}

// vnetctl runs the CLI in-process against f with env (VNETCTL_SERVER is
// f's unless env names one).
func (f *fakeDaemon) vnetctl(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		if k == EnvServer && f != nil {
			return f.srv.URL
		}
		return ""
	}
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, &out, &errOut, getenv)
	return result{code, out.String(), errOut.String()}
}

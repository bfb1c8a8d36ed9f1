package cni

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

func TestForwardName(t *testing.T) {
	seen := map[string]string{}
	for _, c := range []struct {
		id, ifname, proto, hostIP string
		hostPort                  int
	}{
		{"c1", "eth0", "tcp", "", 8080}, {"c1", "eth0", "udp", "", 8080}, {"c1", "eth0", "tcp", "192.0.2.9", 8080},
		{"c1", "eth0", "tcp", "", 8081}, {"c1", "eth1", "tcp", "", 8080}, {"c2", "eth0", "tcp", "", 8080},
		{"c1", "eth0", "tcp", "1", 8080}, {"c1", "eth0", "tcp1", "", 8080}, // the separator keeps these apart
	} {
		name := ForwardName(c.id, c.ifname, c.proto, c.hostIP, c.hostPort)
		if v1.ValidateName(name) != nil || !strings.HasPrefix(name, "cnf-") || len(name) != 20 {
			t.Errorf("ForwardName(%+v) = %q breaks the daemon's name rule or the form", c, name)
		}
		if IsPluginPort(name) {
			t.Errorf("%s is taken for a port: GC would delete it", name)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("%+v and %s both give %s", c, other, name)
		}
		seen[name] = name
	}
	// A known value pins the derivation: changing it would leave every
	// existing forward behind at the next DEL.
	// sha256("c1\0eth0\0tcp\0\0" + "8080")[:8] in hex.
	if got := ForwardName("c1", "eth0", "tcp", "", 8080); got != "cnf-d91f13e133237d9a" {
		t.Errorf("ForwardName(c1, eth0, tcp, \"\", 8080) = %s, want cnf-d91f13e133237d9a", got)
	}
}

func TestMappingForwards(t *testing.T) {
	got := MappingForwards("c1", "eth0", "cni-x", []PortMapping{
		{HostPort: 18080, ContainerPort: 8080, Protocol: "tcp"},
		{HostPort: 18080, ContainerPort: 8080, Protocol: "tcp", HostIP: "::"}, // podman's IPv6 twin: skipped
		{HostPort: 53, ContainerPort: 5353, Protocol: "UDP", HostIP: "0.0.0.0"},
		{HostPort: 8443, ContainerPort: 443, HostIP: "192.0.2.9"},
		{HostPort: 9, ContainerPort: 9, HostIP: "2001:db8::1"},
		{HostPort: 10, ContainerPort: 10, HostIP: "::ffff:192.0.2.9"},
		{HostPort: 11, ContainerPort: 11, Protocol: "sctp", HostIP: "nonsense"}, // the daemon's to refuse
	})
	want := []v1.PortForwardSpec{
		{Protocol: "tcp", HostPort: 18080, Port: "cni-x", TargetPort: 8080},
		{Protocol: "udp", HostPort: 53, Port: "cni-x", TargetPort: 5353},
		{Protocol: "tcp", HostPort: 8443, Port: "cni-x", TargetPort: 443, HostIP: "192.0.2.9"},
		{Protocol: "tcp", HostPort: 10, Port: "cni-x", TargetPort: 10, HostIP: "::ffff:192.0.2.9"},
		{Protocol: "sctp", HostPort: 11, Port: "cni-x", TargetPort: 11, HostIP: "nonsense"},
	}
	var specs []v1.PortForwardSpec
	for _, f := range got {
		specs = append(specs, f.Spec)
		if f.Name != ForwardName("c1", "eth0", f.Spec.Protocol, f.Spec.HostIP, f.Spec.HostPort) {
			t.Errorf("%+v is named %s", f.Spec, f.Name)
		}
	}
	if !slices.Equal(specs, want) {
		t.Fatalf("forwards\n%+v\nwant\n%+v", specs, want)
	}
}

func TestParsePortMappings(t *testing.T) {
	conf, err := ParseConfig(netconf("unix:/x", `,"runtimeConfig":{"portMappings":[{"hostPort":18080,"containerPort":8080,"protocol":"tcp","hostIP":""}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []PortMapping{{HostPort: 18080, ContainerPort: 8080, Protocol: "tcp"}}; !slices.Equal(conf.RuntimeConfig.PortMappings, want) {
		t.Fatalf("mappings %+v, want %+v", conf.RuntimeConfig.PortMappings, want)
	}
}

// mappings are two port mappings as runtimeConfig carries them.
const mappings = `,"runtimeConfig":{"portMappings":[{"hostPort":18080,"containerPort":8080,"protocol":"tcp"},{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"192.0.2.9"}]}`

// TestAddPortMappings: ADD puts the port, then one forward per mapping; a
// forward the daemon refuses fails the ADD with code 7 and undoes what this
// ADD made, and only that.
func TestAddPortMappings(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, to make and enter network namespaces")
	netnsPath := addNetns(t, "eth0")
	name := PortName("c1", "eth0")
	web, dns := ForwardName("c1", "eth0", "tcp", "", 18080), ForwardName("c1", "eth0", "udp", "192.0.2.9", 53)
	port := v1.Port{Name: name, Network: "blue", Type: "veth", Netns: netnsPath, Ifname: "eth0",
		IP: "10.10.0.5/24", MAC: "02:00:00:00:00:05", Gateway: "10.10.0.1", HostIfname: "vnet0123456789"}
	for _, c := range []struct {
		name       string
		portStatus int // of the port's PUT: 201 or 200
		webStatus  int // of the first forward's PUT
		dnsStatus  int // of the second forward's
		wantCode   uint
		wantReqs   []string
	}{
		{name: "created", portStatus: 201, webStatus: 201, dnsStatus: 201,
			wantReqs: []string{"PUT /v1/ports/" + name,
				"PUT /v1/port-forwards/" + web + ` {"protocol":"tcp","host_port":18080,"port":"` + name + `","target_port":8080}`,
				"PUT /v1/port-forwards/" + dns + ` {"protocol":"udp","host_port":53,"port":"` + name + `","target_port":53,"host_ip":"192.0.2.9"}`}},
		{name: "again", portStatus: 200, webStatus: 200, dnsStatus: 200,
			wantReqs: []string{"PUT /v1/ports/" + name, "PUT /v1/port-forwards/" + web, "PUT /v1/port-forwards/" + dns}},
		{name: "host port taken", portStatus: 201, webStatus: 201, dnsStatus: 409, wantCode: types.ErrInvalidNetworkConfig,
			wantReqs: []string{"PUT /v1/ports/" + name, "PUT /v1/port-forwards/" + web, "PUT /v1/port-forwards/" + dns,
				"DELETE /v1/port-forwards/" + web, "DELETE /v1/ports/" + name}},
		{name: "taken, port there before", portStatus: 200, webStatus: 201, dnsStatus: 409, wantCode: types.ErrInvalidNetworkConfig,
			wantReqs: []string{"PUT /v1/ports/" + name, "PUT /v1/port-forwards/" + web, "PUT /v1/port-forwards/" + dns,
				"DELETE /v1/port-forwards/" + web}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == "PUT" && r.URL.Path == "/v1/ports/"+name:
					answer(w, c.portStatus, port)
				case r.Method == "PUT" && r.URL.Path == "/v1/port-forwards/"+dns && c.dnsStatus == 409:
					daemonErr(w, 409, `conflict: host port udp/192.0.2.9:53 is forwarded by "other" (port web1 on h1)`)
				case r.Method == "PUT":
					status := c.webStatus
					if r.URL.Path == "/v1/port-forwards/"+dns {
						status = c.dnsStatus
					}
					var spec v1.PortForwardSpec
					_ = json.NewDecoder(r.Body).Decode(&spec)
					answer(w, status, v1.PortForward{Name: strings.TrimPrefix(r.URL.Path, "/v1/port-forwards/"), Protocol: spec.Protocol, HostPort: spec.HostPort, Port: spec.Port})
				case r.Method == "DELETE":
					w.WriteHeader(204)
				}
			})
			var out strings.Builder
			err := fastPlugin(&out).Add(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: netnsPath, StdinData: netconf(f.URL, mappings)})
			if cniCode(err) != c.wantCode || (c.wantCode == 0) != (err == nil) {
				t.Fatalf("err %v, want code %d", err, c.wantCode)
			}
			if c.wantCode != 0 && (!strings.Contains(err.Error(), "conflict: forward host port udp/192.0.2.9:53 to port "+name+":53") || out.Len() != 0) {
				t.Fatalf("err %v, printed %q", err, out.String())
			}
			reqs := f.requests()
			if len(reqs) != len(c.wantReqs) {
				t.Fatalf("requests\n%s\nwant\n%s", strings.Join(reqs, "\n"), strings.Join(c.wantReqs, "\n"))
			}
			for i, want := range c.wantReqs {
				if !strings.HasPrefix(reqs[i], want) {
					t.Fatalf("request %d: %s, want %s", i, reqs[i], want)
				}
			}
		})
	}
}

// TestDelPortMappings: DEL deletes the mappings' forwards by name, gone or
// not, then the port.
func TestDelPortMappings(t *testing.T) {
	name := PortName("c1", "eth0")
	web, dns := ForwardName("c1", "eth0", "tcp", "", 18080), ForwardName("c1", "eth0", "udp", "192.0.2.9", 53)
	f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/port-forwards/"+web {
			daemonErr(w, 404, "not found: port forward") // the cascade was first
			return
		}
		w.WriteHeader(204)
	})
	if err := fastPlugin(io.Discard).Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: netconf(f.URL, mappings)}); err != nil {
		t.Fatal(err)
	}
	want := []string{"DELETE /v1/port-forwards/" + web, "DELETE /v1/port-forwards/" + dns, "DELETE /v1/ports/" + name}
	if reqs := f.requests(); !slices.Equal(reqs, want) {
		t.Fatalf("requests %q, want %q", reqs, want)
	}
}

// TestCheckPortMappings: CHECK fails when a mapping's forward is missing or
// differs from what the mapping asks for.
func TestCheckPortMappings(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, to make and enter network namespaces")
	path := addNetns(t, "eth0")
	port := testPort()
	port.Netns, port.MAC = path, "02:00:00:00:00:05"
	web, dns := ForwardName("c1", "eth0", "tcp", "", 18080), ForwardName("c1", "eth0", "udp", "192.0.2.9", 53)
	good := map[string]v1.PortForward{
		web: {Name: web, Protocol: "tcp", HostPort: 18080, Port: port.Name, TargetPort: 8080},
		dns: {Name: dns, Protocol: "udp", HostPort: 53, HostIP: netip.MustParseAddr("192.0.2.9"), Port: port.Name, TargetPort: 53},
	}
	for _, c := range []struct {
		name    string
		edit    func(map[string]v1.PortForward)
		wantMsg string // "" for success
	}{
		{name: "all there", edit: func(map[string]v1.PortForward) {}},
		{name: "one missing", edit: func(m map[string]v1.PortForward) { delete(m, dns) },
			wantMsg: "port mapping udp/192.0.2.9:53 has no port forward " + dns},
		{name: "other target", edit: func(m map[string]v1.PortForward) { f := m[web]; f.TargetPort = 80; m[web] = f },
			wantMsg: "port forward " + web + " is"},
		{name: "other port", edit: func(m map[string]v1.PortForward) { f := m[web]; f.Port = "web1"; m[web] = f },
			wantMsg: "Port:web1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fwds := map[string]v1.PortForward{web: good[web], dns: good[dns]}
			c.edit(fwds)
			f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
				if name, ok := strings.CutPrefix(r.URL.Path, "/v1/port-forwards/"); ok {
					if fw, ok := fwds[name]; ok {
						answer(w, 200, fw)
						return
					}
					daemonErr(w, 404, "not found: port forward")
					return
				}
				answer(w, 200, port)
			})
			err := fastPlugin(io.Discard).Check(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Netns: path, StdinData: netconf(f.URL, mappings)})
			if (c.wantMsg == "") != (err == nil) || err != nil && (!strings.Contains(err.Error(), c.wantMsg) || cniCode(err) != types.ErrInternal) {
				t.Fatalf("err %v, want %q", err, c.wantMsg)
			}
		})
	}
}

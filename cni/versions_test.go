package cni

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// viaSkel runs command as the plugin's main does, through skel, which holds
// the version rules: CNI_* in the environment, conf on standard input.
func viaSkel(t *testing.T, p *Plugin, command, netnsPath string, conf []byte) error {
	t.Helper()
	for k, v := range map[string]string{"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": netnsPath,
		"CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": "", "CNI_NETNS_OVERRIDE": ""} {
		t.Setenv(k, v)
	}
	stdin := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(stdin, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(stdin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = saved }()
	if e := skel.PluginMainFuncsWithError(p.Funcs(), Versions(), ""); e != nil {
		return e
	}
	return nil
}

// summary is a result reduced to what a runtime reads from it, whatever
// its version: "name mac sandbox" per interface, "interface address
// gateway" per address, "dst gw" per route.
type summary struct {
	Version                      string
	Interfaces, IPs, Routes, DNS []string
}

// summarize parses raw as the result type of version, not the newest one,
// so a field lost in the conversion shows.
func summarize(t *testing.T, version string, raw []byte) summary {
	t.Helper()
	parsed, err := create.Create(version, raw)
	if err != nil {
		t.Fatalf("result as %s: %v\n%s", version, err, raw)
	}
	var s summary
	switch r := parsed.(type) {
	case *types040.Result:
		s.Version = r.CNIVersion
		for _, i := range r.Interfaces {
			s.Interfaces = append(s.Interfaces, fmt.Sprintf("%s %s %s", i.Name, i.Mac, i.Sandbox))
		}
		for _, ip := range r.IPs {
			if ip.Version != "4" || ip.Interface == nil {
				t.Fatalf("0.4.0 address without version 4 or interface: %s", raw)
			}
			s.IPs = append(s.IPs, fmt.Sprintf("%d %s %s", *ip.Interface, &ip.Address, ip.Gateway))
		}
		s.Routes, s.DNS = routeStrings(r.Routes), dnsStrings(r.DNS)
	case *current.Result:
		s.Version = r.CNIVersion
		for _, i := range r.Interfaces {
			s.Interfaces = append(s.Interfaces, fmt.Sprintf("%s %s %s", i.Name, i.Mac, i.Sandbox))
		}
		for _, ip := range r.IPs {
			if ip.Interface == nil {
				t.Fatalf("address without interface: %s", raw)
			}
			s.IPs = append(s.IPs, fmt.Sprintf("%d %s %s", *ip.Interface, &ip.Address, ip.Gateway))
		}
		s.Routes, s.DNS = routeStrings(r.Routes), dnsStrings(r.DNS)
	default:
		t.Fatalf("result as %s is a %T", version, parsed)
	}
	return s
}

func routeStrings(routes []*types.Route) []string {
	var out []string
	for _, r := range routes {
		out = append(out, fmt.Sprintf("%s %s", &r.Dst, r.GW))
	}
	return out
}

func dnsStrings(d types.DNS) []string {
	return slices.Concat(d.Nameservers, d.Search, d.Options, []string{d.Domain})
}

// TestVersions runs every command through skel in each CNI version a
// runtime sends: ADD answers in that version with every field, CHECK and
// DEL take a prevResult of that version, STATUS and GC exist from 1.1.0 on,
// and versions the plugin does not speak are refused before any request.
func TestVersions(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, to make and enter network namespaces")
	if got, want := Versions().SupportedVersions(), []string{"0.4.0", "1.0.0", "1.1.0"}; !slices.Equal(got, want) {
		t.Fatalf("VERSION lists %v, want %v", got, want)
	}
	netnsPath := addNetns(t, "eth0")
	name := PortName("c1", "eth0")
	port := v1.Port{Name: name, Network: "blue", Type: "veth", Netns: netnsPath, Ifname: "eth0",
		IP: "10.10.0.5/24", MAC: "02:00:00:00:00:05", Gateway: "10.10.0.1", HostIfname: "vnet0123456789"}
	f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/ports/"+name && r.Method == "DELETE":
			w.WriteHeader(204)
		case r.URL.Path == "/v1/ports/"+name:
			answer(w, 200, port)
		case r.URL.Path == "/v1/ports":
			answer(w, 200, map[string]any{"ports": []v1.Port{port}})
		case r.URL.Path == "/v1/info":
			answer(w, 200, map[string]any{"host": "h1"})
		case r.URL.Path == "/readyz":
			answer(w, 200, map[string]string{"status": "ok"})
		case r.URL.Path == "/v1/networks/blue":
			answer(w, 200, v1.NetworkSpec{Subnet: "10.10.0.0/24"})
		default:
			daemonErr(w, 404, "unexpected "+r.Method+" "+r.URL.String())
		}
	})
	conf := func(version, extra string) []byte {
		return fmt.Appendf(nil, `{"cniVersion":%q,"name":"test","type":"ovs-vnet-cni","network":"blue","server":%q%s}`, version, f.URL, extra)
	}
	want := summary{
		Interfaces: []string{"vnet0123456789  ", "eth0 02:00:00:00:00:05 " + netnsPath},
		IPs:        []string{"1 10.10.0.5/24 10.10.0.1"},
		Routes:     []string{"0.0.0.0/0 10.10.0.1"},
		DNS:        []string{""},
	}
	for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			var out bytes.Buffer
			p := fastPlugin(&out)
			if err := viaSkel(t, p, "ADD", netnsPath, conf(v, "")); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			want.Version = v
			if got := summarize(t, v, out.Bytes()); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("ADD result %+v, want %+v\n%s", got, want, out.String())
			}
			withPrev := conf(v, `,"prevResult":`+out.String())
			for _, cmd := range []string{"CHECK", "DEL"} {
				if err := viaSkel(t, p, cmd, netnsPath, withPrev); err != nil {
					t.Fatalf("%s with a %s prevResult: %v", cmd, v, err)
				}
			}
			for _, cmd := range []string{"STATUS", "GC"} {
				err := viaSkel(t, p, cmd, netnsPath, conf(v, ""))
				if v == "1.1.0" && err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				if v != "1.1.0" && cniCode(err) != types.ErrIncompatibleCNIVersion {
					t.Fatalf("%s in %s: %v, want code %d", cmd, v, err, types.ErrIncompatibleCNIVersion)
				}
			}
		})
	}
	for _, v := range []string{"0.3.1", "2.0.0"} {
		t.Run(v, func(t *testing.T) {
			before := len(f.requests())
			for _, cmd := range []string{"ADD", "CHECK", "DEL"} {
				var out bytes.Buffer
				if err := viaSkel(t, fastPlugin(&out), cmd, netnsPath, conf(v, "")); cniCode(err) != types.ErrIncompatibleCNIVersion || out.Len() != 0 {
					t.Fatalf("%s in %s: %v, printed %q; want code %d", cmd, v, err, out.String(), types.ErrIncompatibleCNIVersion)
				}
			}
			if reqs := f.requests()[before:]; len(reqs) != 0 {
				t.Fatalf("refused versions reached the daemon: %q", reqs)
			}
		})
	}
}

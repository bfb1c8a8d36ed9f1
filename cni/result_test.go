package cni

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestBuildResult(t *testing.T) {
	port := v1.Port{Name: "cni-0123456789abcdef", Network: "blue", Type: "veth", Netns: "/var/run/netns/a",
		Ifname: "eth0", IP: "10.10.0.5/24", MAC: "02:aa:bb:cc:dd:ee", Gateway: "10.10.0.1", HostIfname: "vnet0123456789"}
	for _, c := range []struct {
		name    string
		mutate  func(p *v1.Port)
		noRoute bool // the interface holds no default route
		version string
		want    string // the printed JSON
		wantErr string
	}{
		{name: "1.1.0", version: "1.1.0", want: wantResult("1.1.0")},
		{name: "1.0.0", version: "1.0.0", want: wantResult("1.0.0")},
		{name: "no default route", version: "1.1.0", noRoute: true, want: strings.Replace(wantResult("1.1.0"), `,
		"routes": [{"dst": "0.0.0.0/0", "gw": "10.10.0.1"}]`, "", 1)},
		{name: "a bare address", version: "1.1.0", mutate: func(p *v1.Port) { p.IP = "10.10.0.5" }, wantErr: "not an IPv4 prefix"},
		{name: "ipv6", version: "1.1.0", mutate: func(p *v1.Port) { p.IP = "fd00::5/64" }, wantErr: "not an IPv4 prefix"},
		{name: "no gateway", version: "1.1.0", mutate: func(p *v1.Port) { p.Gateway = "" }, wantErr: "gateway"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := port
			if c.mutate != nil {
				c.mutate(&p)
			}
			res, err := BuildResult(p, "/var/run/netns/a", "eth0", !c.noRoute)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := res.GetAsVersion(c.version)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := out.PrintTo(&buf); err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("result is not JSON: %v\n%s", err, buf.String())
			}
			if err := json.Unmarshal([]byte(c.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("result:\n%s\nwant:\n%s", buf.String(), c.want)
			}
		})
	}
}

// wantResult is the result of the port in TestBuildResult, as a runtime
// reads it.
func wantResult(version string) string {
	return `{
		"cniVersion": "` + version + `",
		"interfaces": [
			{"name": "vnet0123456789"},
			{"name": "eth0", "mac": "02:aa:bb:cc:dd:ee", "sandbox": "/var/run/netns/a"}
		],
		"ips": [{"interface": 1, "address": "10.10.0.5/24", "gateway": "10.10.0.1"}],
		"routes": [{"dst": "0.0.0.0/0", "gw": "10.10.0.1"}]
	}`
}

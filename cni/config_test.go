package cni

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovs-vnet/ovs-vnet/client"
)

// cniCode is the CNI error code of err, or 0 when err is not a *types.Error.
func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestParseConfig(t *testing.T) {
	for _, c := range []struct {
		name, in   string
		wantCode   uint   // 0: success
		wantErr    string // part of the message
		wantServer string
		check      func(t *testing.T, c *NetConf)
	}{
		{name: "minimal", in: `{"cniVersion":"1.1.0","name":"n","type":"ovs-vnet-cni","network":"blue"}`,
			wantServer: client.DefaultServer},
		{name: "unix socket and unknown keys", in: `{"cniVersion":"1.0.0","name":"n","type":"ovs-vnet-cni","network":"blue",
			"server":"/run/ovs-vnet/api.sock","mtu":9000,"ipam":{},"whatever":{"a":[1]}}`, wantServer: "/run/ovs-vnet/api.sock"},
		{name: "missing network", in: `{"cniVersion":"1.1.0","name":"n","type":"ovs-vnet-cni"}`,
			wantCode: types.ErrInvalidNetworkConfig, wantErr: `lacks "network"`},
		{name: "invalid network", in: `{"cniVersion":"1.1.0","name":"n","type":"ovs-vnet-cni","network":"Blue_1"}`,
			wantCode: types.ErrInvalidNetworkConfig, wantErr: `"network"`},
		{name: "not json", in: `{"cniVersion":`, wantCode: types.ErrDecodingFailure, wantErr: "decode network configuration"},
		{name: "network of the wrong type", in: `{"cniVersion":"1.1.0","name":"n","network":7}`,
			wantCode: types.ErrDecodingFailure},
		{name: "prevResult", in: `{"cniVersion":"1.1.0","name":"n","network":"blue","prevResult":{"cniVersion":"1.1.0",
			"interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"interface":0,"address":"10.1.0.2/24"}]}}`,
			wantServer: client.DefaultServer, check: func(t *testing.T, c *NetConf) {
				if c.PrevResult == nil {
					t.Fatal("prevResult not decoded")
				}
			}},
		{name: "valid attachments", in: `{"cniVersion":"1.1.0","name":"n","network":"blue",
			"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}`,
			wantServer: client.DefaultServer, check: func(t *testing.T, c *NetConf) {
				if len(c.ValidAttachments) != 1 || c.ValidAttachments[0].ContainerID != "c1" {
					t.Fatalf("valid attachments %+v", c.ValidAttachments)
				}
			}},
		{name: "security groups", in: `{"cniVersion":"1.1.0","name":"n","network":"blue","security_groups":["web","ssh"]}`,
			wantServer: client.DefaultServer, check: func(t *testing.T, c *NetConf) {
				if strings.Join(c.SecurityGroups, ",") != "web,ssh" {
					t.Fatalf("security groups %q", c.SecurityGroups)
				}
			}},
		{name: "invalid security group", in: `{"cniVersion":"1.1.0","name":"n","network":"blue","security_groups":["web","Web!"]}`,
			wantCode: types.ErrInvalidNetworkConfig, wantErr: `"security_groups"[1]: `},
		{name: "security groups not a list", in: `{"cniVersion":"1.1.0","name":"n","network":"blue","security_groups":"web"}`,
			wantCode: types.ErrDecodingFailure},
		{name: "legacy attachments key", in: `{"cniVersion":"1.1.0","name":"n","network":"blue",
			"cni.dev/attachments":[{"containerID":"c2","ifname":"net1"}]}`,
			wantServer: client.DefaultServer, check: func(t *testing.T, c *NetConf) {
				if len(c.ValidAttachments) != 1 || c.ValidAttachments[0].IfName != "net1" {
					t.Fatalf("valid attachments %+v", c.ValidAttachments)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf, err := ParseConfig([]byte(c.in))
			if c.wantCode != 0 {
				if cniCode(err) != c.wantCode || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v (code %d), want code %d containing %q", err, cniCode(err), c.wantCode, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if conf.Network != "blue" || conf.Server != c.wantServer {
				t.Fatalf("network %q server %q", conf.Network, conf.Server)
			}
			if c.check != nil {
				c.check(t, conf)
			}
		})
	}
}

func TestRequestFrom(t *testing.T) {
	for _, c := range []struct {
		name, conf, cniArgs string
		want                Request
		wantErr             string
	}{
		{name: "nothing", conf: `{}`},
		{name: "ips capability with prefix", conf: `{"runtimeConfig":{"ips":["10.1.0.5/24"],"mac":"02:00:00:00:00:05"}}`,
			want: Request{IP: "10.1.0.5", MAC: "02:00:00:00:00:05"}},
		{name: "args.cni", conf: `{"args":{"cni":{"ips":["10.1.0.6"],"mac":"02:00:00:00:00:06"}}}`,
			want: Request{IP: "10.1.0.6", MAC: "02:00:00:00:00:06"}},
		{name: "CNI_ARGS", conf: `{}`, cniArgs: "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.7;MAC=02:00:00:00:00:07",
			want: Request{IP: "10.1.0.7", MAC: "02:00:00:00:00:07"}},
		{name: "capability wins over args and CNI_ARGS", conf: `{"runtimeConfig":{"ips":["10.1.0.8"]},"args":{"cni":{"ips":["10.1.0.9"]}}}`,
			cniArgs: "IP=10.1.0.10", want: Request{IP: "10.1.0.8"}},
		{name: "args wins over CNI_ARGS", conf: `{"args":{"cni":{"ips":["10.1.0.9"]}}}`, cniArgs: "IP=10.1.0.10;garbage",
			want: Request{IP: "10.1.0.9"}},
		{name: "two addresses", conf: `{"runtimeConfig":{"ips":["10.1.0.5/24","10.1.0.6/24"]}}`, wantErr: "one IPv4 address"},
		{name: "ipv6", conf: `{"runtimeConfig":{"ips":["fd00::5/64"]}}`, wantErr: "not IPv4"},
		{name: "not an address", conf: `{"args":{"cni":{"ips":["ten"]}}}`, wantErr: "not an address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := `{"cniVersion":"1.1.0","name":"n","network":"blue"`
			if inner := c.conf[1 : len(c.conf)-1]; inner != "" {
				in += "," + inner
			}
			conf, err := ParseConfig([]byte(in + "}"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := conf.RequestFrom(c.cniArgs)
			if c.wantErr != "" {
				if cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want code 7 containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

// TestPrimary: the attachment on eth0 is a container's primary one unless
// the configuration's default_route says otherwise, either way.
func TestPrimary(t *testing.T) {
	for _, c := range []struct {
		conf, ifname string
		want         bool
	}{
		{``, "eth0", true},
		{``, "eth1", false},
		{``, "net1", false},
		{`,"default_route":true`, "eth1", true},
		{`,"default_route":false`, "eth0", false},
	} {
		conf, err := ParseConfig([]byte(`{"cniVersion":"1.0.0","name":"n","network":"blue"` + c.conf + `}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := conf.Primary(c.ifname); got != c.want {
			t.Errorf("configuration {…%s} on %s: primary %v, want %v", c.conf, c.ifname, got, c.want)
		}
	}
}

func TestClientOptions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, file, server, caFile, wantErr string
	}{
		{name: "trimmed", file: write("ok", "  s3cret\n")},
		{name: "empty", file: write("empty", " \n"), wantErr: "is empty"},
		{name: "missing", file: filepath.Join(dir, "nope"), wantErr: "read token_file"},
		{name: "bad server", server: "ftp://x", wantErr: "client of ftp://x"},
		{name: "CA file without a certificate", server: "https://127.0.0.1:9476", caFile: write("ca.pem", "junk"), wantErr: "no PEM certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := &NetConf{Network: "blue", Server: client.DefaultServer, TokenFile: c.file, CAFile: c.caFile}
			if c.server != "" {
				conf.Server = c.server
			}
			_, err := conf.Client()
			if c.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if c.wantErr != "" && (cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("err %v, want code 7 containing %q", err, c.wantErr)
			}
		})
	}
}

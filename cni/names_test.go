package cni

import (
	"regexp"
	"slices"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestPortName(t *testing.T) {
	daemonRule := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	long := string(make([]byte, 4096))
	seen := map[string]string{}
	for _, c := range []struct{ id, ifname string }{
		{"c1", "eth0"}, {"c1", "eth1"}, {"c2", "eth0"},
		{"ab", "ceth0"}, {"abc", "eth0"}, // the separator keeps these apart
		{"cnitool-0123456789abcdef0123", "net1"}, {long, "eth0"}, {"", ""},
	} {
		name := PortName(c.id, c.ifname)
		if !daemonRule.MatchString(name) || v1.ValidateName(name) != nil {
			t.Errorf("PortName(%q, %q) = %q breaks the daemon's name rule", c.id, c.ifname, name)
		}
		if !IsPluginPort(name) {
			t.Errorf("IsPluginPort(%q) = false", name)
		}
		if again := PortName(c.id, c.ifname); again != name {
			t.Errorf("not deterministic: %q then %q", name, again)
		}
		key := c.id + "/" + c.ifname
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s both give %s", other, key, name)
		}
		seen[name] = key
	}
	// A known value pins the derivation: changing it would orphan every
	// existing attachment at the next DEL and make GC delete live ones.
	if got := PortName("c1", "eth0"); got != "cni-"+knownC1Eth0 {
		t.Errorf("PortName(c1, eth0) = %s, want cni-%s", got, knownC1Eth0)
	}
}

// knownC1Eth0 is sha256("c1\x00eth0")[:8] in hex.
const knownC1Eth0 = "ec43057c07aaa51f"

func TestIsPluginPort(t *testing.T) {
	for name, want := range map[string]bool{
		"cni-0123456789abcdef":  true,
		"cni-0123456789abcde":   false, // 15 digits
		"cni-0123456789abcdef0": false, // 17
		"cni-0123456789ABCDEF":  false, // the daemon would refuse it anyway
		"cni-0123456789abcdeg":  false,
		"cnx-0123456789abcdef":  false,
		"web1":                  false,
		"cni-web":               false,
		"0123456789abcdef":      false,
		"":                      false,
	} {
		if got := IsPluginPort(name); got != want {
			t.Errorf("IsPluginPort(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestStalePorts(t *testing.T) {
	live, dead := PortName("live", "eth0"), PortName("dead", "eth0")
	liveNet1 := PortName("live", "net1")
	ports := []v1.Port{
		{Name: live, Network: "blue", Host: "h1"},
		{Name: dead, Network: "blue", Host: "h1"},
		{Name: liveNet1, Network: "blue", Host: "h1"},
		{Name: "web1", Network: "blue", Host: "h1"},                 // made by hand: never ours
		{Name: "cni-0123456789abcdef", Network: "blue", Host: "h1"}, // ours in form, no attachment
		{Name: PortName("x", "eth0"), Network: "red", Host: "h1"},   // another network's
		{Name: PortName("y", "eth0"), Network: "blue", Host: "h2"},  // another host's
	}
	for _, c := range []struct {
		name  string
		valid []types.GCAttachment
		want  []string
	}{
		{"no valid attachments", nil, []string{live, dead, liveNet1, "cni-0123456789abcdef"}},
		{"one valid", []types.GCAttachment{{ContainerID: "live", IfName: "eth0"}}, []string{dead, liveNet1, "cni-0123456789abcdef"}},
		{"ifname matters", []types.GCAttachment{{ContainerID: "live", IfName: "net1"}}, []string{live, dead, "cni-0123456789abcdef"}},
		{"all valid", []types.GCAttachment{{ContainerID: "live", IfName: "eth0"}, {ContainerID: "dead", IfName: "eth0"},
			{ContainerID: "live", IfName: "net1"}}, []string{"cni-0123456789abcdef"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := StalePorts(ports, "blue", "h1", c.valid); !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

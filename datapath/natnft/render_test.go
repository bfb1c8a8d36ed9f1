package natnft

import (
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

var (
	web = model.Target{Port: "web1", Network: "blue", IP: netip.MustParseAddr("10.61.0.5")}
	db  = model.Target{Port: "db1", Network: "red", IP: netip.MustParseAddr("10.62.0.7")}

	ovsHost = Host{Ours: []string{"br-vnet"}, Subnets: []netip.Prefix{netip.MustParsePrefix("10.62.0.0/24"), netip.MustParsePrefix("10.61.0.0/24")}}

	sample = model.NAT{
		Floating: []model.FloatingRule{{Name: "pub", Address: netip.MustParseAddr("203.0.113.50"), Target: web}},
		Forwards: []model.ForwardRule{
			{Name: "dns", Proto: model.ProtoUDP, HostIP: netip.MustParseAddr("192.0.2.9"), HostPort: 53, TargetPort: 5353, Target: db},
			{Name: "web", Proto: model.ProtoTCP, HostPort: 8080, TargetPort: 80, Target: web},
		},
	}
)

func TestRender(t *testing.T) {
	ovs := Render(sample, ovsHost, nil)
	check(t, "testdata/ovs.golden", "", ovs)
	linux := Render(sample, Host{Ours: []string{"vnet-red", "vnet-blue"}, Subnets: ovsHost.Subnets}, nil)
	check(t, "testdata/linux.golden", "", linux)

	// One forward fewer, on a table that holds the sample: its counters
	// go, the others are declared again (and so keep their values).
	fewer := model.NAT{Floating: sample.Floating, Forwards: sample.Forwards[1:]}
	check(t, "testdata/removed.golden", ovs, Render(fewer, ovsHost, CounterNames(sample)))

	// Nothing left: the table goes, whatever it held.
	check(t, "testdata/empty.golden", ovs, Render(model.NAT{}, ovsHost, CounterNames(sample)))
}

func TestHash(t *testing.T) {
	ab, ba := ovsHost, ovsHost
	ab.Ours, ba.Ours = []string{"a", "b"}, []string{"b", "a"}
	ba.Subnets = []netip.Prefix{ovsHost.Subnets[1], ovsHost.Subnets[0]}
	h := Hash(sample, ab)
	if again := Hash(sample, ba); again != h {
		t.Errorf("the interfaces' or subnets' order changes the hash: %s, %s", h, again)
	}
	other := sample
	other.Forwards = slices.Clone(sample.Forwards)
	other.Forwards[1].TargetPort = 81
	if Hash(other, ab) == h {
		t.Error("another target port, the same hash")
	}
	if Hash(sample, Host{Ours: ab.Ours}) == h {
		t.Error("other subnets, the same hash")
	}
	if !strings.Contains(Render(sample, ba, nil), `comment "nat=`+h+` floating-ip pub"`) {
		t.Errorf("the first rule does not carry the hash %s", h)
	}
}

func TestCounterNames(t *testing.T) {
	want := []string{"fc_dns", "fc_web", "fi_pub", "fo_pub", "fp_dns", "fp_web"}
	if got := CounterNames(sample); !slices.Equal(got, want) {
		t.Errorf("counters %q, want %q", got, want)
	}
}

// check compares got with the golden file and has nft check it, after
// before: the table it is meant to change. nft -c parses the script and
// validates it against the kernel as one transaction without committing,
// in a network namespace of its own that dies with it.
func check(t *testing.T, file, before, got string) {
	t.Helper()
	golden.Check(t, file, got)
	testbed.Need(t, os.Geteuid() == 0, "root: nft -c needs it")
	cmd := exec.Command("unshare", "--net", "nft", "-c", "-f", "-")
	cmd.Stdin = strings.NewReader(before + got)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("nft -c rejects %s: %v\n%s\n%s", file, err, out, before+got)
	}
}

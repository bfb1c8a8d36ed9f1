package ovs

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

func TestParseDpctlShowGolden(t *testing.T) {
	for _, c := range []struct {
		file string
		want []datapath.DatapathStats
	}{
		// Captured from ovs-vswitchd 3.1 (userspace datapath) after pings
		// between two ports of a NORMAL bridge.
		{"testdata/dpctl-show-netdev.txt", []datapath.DatapathStats{{Name: "netdev@ovs-netdev", Hit: 11, Missed: 9, Flows: 9}}},
		// The same with -s: per-port counters to be skipped.
		{"testdata/dpctl-show-netdev-stats.txt", []datapath.DatapathStats{{Name: "netdev@ovs-netdev", Hit: 22, Missed: 19, Flows: 2}}},
		// The kernel datapath in the format of lib/dpctl.c (show_dpif: masks,
		// cache and caches lines) next to a userspace one: no kernel
		// module here to capture it from.
		{"testdata/dpctl-show-system.txt", []datapath.DatapathStats{
			{Name: "system@ovs-system", Hit: 18763552, Missed: 1049, Lost: 3, Flows: 12, MasksHit: 40115621, MasksTotal: 4, HasMasks: true},
			{Name: "netdev@ovs-netdev", Hit: 11, Missed: 9, Flows: 9},
		}},
	} {
		text, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseDpctlShow(string(text))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.file, got, c.want)
		}
	}
}

func TestParseDpctlShow(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       []datapath.DatapathStats
		err        string
	}{
		{name: "empty", text: "", want: nil},
		{name: "no stats", text: "netdev@ovs-netdev:\n  port 0: ovs-netdev (tap)\n", want: []datapath.DatapathStats{{Name: "netdev@ovs-netdev"}}},
		{name: "max counters", text: "system@ovs-system:\n  lookups: hit:18446744073709551615 missed:0 lost:0\n  flows: 0\n",
			want: []datapath.DatapathStats{{Name: "system@ovs-system", Hit: 1<<64 - 1}}},
		{name: "keys in any order, tabs, CRLF-free extra fields", text: "system@s:\n\tlookups: lost:1 missed:2 hit:3 extra:x\n\tmasks: total:5 hit/pkt:0.00 hit:6\n",
			want: []datapath.DatapathStats{{Name: "system@s", Hit: 3, Missed: 2, Lost: 1, MasksHit: 6, MasksTotal: 5, HasMasks: true}}},
		{name: "port named like a field", text: "netdev@n:\n  flows: 1\n  port 2: flows\n", want: []datapath.DatapathStats{{Name: "netdev@n", Flows: 1}}},
		{name: "missing key", text: "netdev@n:\n  lookups: hit:1 missed:2\n", err: "want the keys"},
		{name: "bad number", text: "netdev@n:\n  flows: many\n", err: `line 2 ("flows: many")`},
		{name: "negative", text: "netdev@n:\n  lookups: hit:-1 missed:0 lost:0\n", err: "hit"},
		{name: "not key:value", text: "netdev@n:\n  lookups: hit 1\n", err: "not key:value"},
		{name: "stats before header", text: "  flows: 1\n", err: "before any datapath header"},
		{name: "not a header", text: "hello world\n", err: "not a datapath header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseDpctlShow(c.text)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %+v, %v; want error containing %q", got, err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

// TestParseIPFMinV4 reads the setting out of ovs-vswitchd 3.1's status
// (captured from a sandbox, userspace datapath, at its default).
func TestParseIPFMinV4(t *testing.T) {
	text, err := os.ReadFile("testdata/ipf-status-netdev.txt")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := parseIPFMinV4(string(text)); !ok || n != 1200 {
		t.Errorf("parseIPFMinV4 = %d, %v; want 1200", n, ok)
	}
	if _, ok := parseIPFMinV4("min v6 frag size: 1280\n"); ok {
		t.Error("parseIPFMinV4 found a v4 size in a status without one")
	}
}

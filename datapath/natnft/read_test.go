package natnft

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables/expr"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

func TestParseHash(t *testing.T) {
	for comment, want := range map[string]string{
		"nat=31145c2c547d0331 floating-ip pub": "31145c2c547d0331",
		"nat=31145c2c547d0331":                 "31145c2c547d0331",
		"port-forward web":                     "",
		"":                                     "",
	} {
		if got := parseHash(comment); got != want {
			t.Errorf("parseHash(%q) = %q, want %q", comment, got, want)
		}
	}
}

func TestStats(t *testing.T) {
	got := stats(map[string]*expr.Counter{
		"fc_web": {Packets: 3, Bytes: 180}, "fp_web": {Packets: 40, Bytes: 4000},
		"fi_pub": {Packets: 2, Bytes: 120}, "fo_pub": {Packets: 5, Bytes: 300},
		"fc_dns": {Packets: 1}, "junk": {Packets: 9}, "fc_": {Packets: 9},
	})
	want := datapath.NATStats{
		Forwards: []datapath.ForwardStats{{Name: "dns", Connections: 1}, {Name: "web", Connections: 3, Packets: 40, Bytes: 4000}},
		Floating: []datapath.FloatingStats{{Name: "pub", ConnectionsIn: 2, ConnectionsOut: 5}},
	}
	if !slices.Equal(got.Forwards, want.Forwards) || !slices.Equal(got.Floating, want.Floating) {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// TestInstalled loads what Render makes into a namespace's kernel and
// reads it back: the hash of the first rule and the counters, then
// nothing once the NAT is empty.
func TestInstalled(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test loads nftables in a network namespace")
	ns := testbed.Netns(t, "vnt-nat-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := func(f func() error) {
		t.Helper()
		if err := testbed.InNetns(ns, f); err != nil {
			t.Fatal(err)
		}
	}
	var hash string
	var counters []string
	in(func() (err error) { hash, counters, err = Installed(ctx); return err })
	if hash != "" || counters != nil {
		t.Errorf("no table: hash %q, counters %q", hash, counters)
	}
	in(func() error { return hostnet.ApplyNft(ctx, Render(sample, ovsHost, nil)) })
	in(func() (err error) { hash, counters, err = Installed(ctx); return err })
	if want := Hash(sample, ovsHost); hash != want {
		t.Errorf("hash %q, want %q", hash, want)
	}
	if want := CounterNames(sample); !slices.Equal(counters, want) {
		t.Errorf("counters %q, want %q", counters, want)
	}
	var s datapath.NATStats
	in(func() (err error) { s, err = ReadStats(ctx); return err })
	if len(s.Forwards) != 2 || len(s.Floating) != 1 {
		t.Errorf("stats of the sample: %+v", s)
	}
	in(func() error { return hostnet.ApplyNft(ctx, Render(model.NAT{}, ovsHost, counters)) })
	in(func() (err error) { hash, counters, err = Installed(ctx); return err })
	if hash != "" || counters != nil {
		t.Errorf("table removed: hash %q, counters %q", hash, counters)
	}
}

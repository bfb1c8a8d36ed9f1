package linux

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

func TestParseSpoofCounters(t *testing.T) {
	data := `{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
	{"counter": {"family": "bridge", "name": "spoof_web-1", "table": "ovs_vnet", "handle": 1, "packets": 7, "bytes": 420}},
	{"counter": {"family": "bridge", "name": "spoof_vm", "table": "ovs_vnet", "handle": 2, "packets": 0, "bytes": 0}},
	{"counter": {"family": "bridge", "name": "other", "table": "ovs_vnet", "handle": 3, "packets": 9, "bytes": 9}},
	{"counter": {"family": "inet", "name": "spoof_x", "table": "ovs_vnet", "handle": 4, "packets": 9, "bytes": 9}}]}`
	got, err := parseSpoofCounters([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["web-1"] != 7 || got["vm"] != 0 {
		t.Errorf("parsed %v, want web-1:7 vm:0", got)
	}
	if _, err := parseSpoofCounters([]byte(`{"nftables": [`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

// TestParseSpoofCounterMsg feeds NFT_MSG_NEWOBJ messages as the kernel
// builds them: only counters named spoof_* of table bridge ovs_vnet count.
func TestParseSpoofCounterMsg(t *testing.T) {
	msg := func(family uint8, table, name string, typ uint32, packets uint64) []byte {
		b := (&nl.Nfgenmsg{NfgenFamily: family, Version: nl.NFNETLINK_V0}).Serialize()
		b = append(b, nl.NewRtAttr(unix.NFTA_OBJ_TABLE, nl.ZeroTerminated(table)).Serialize()...)
		b = append(b, nl.NewRtAttr(unix.NFTA_OBJ_NAME, nl.ZeroTerminated(name)).Serialize()...)
		b = append(b, nl.NewRtAttr(unix.NFTA_OBJ_TYPE, binary.BigEndian.AppendUint32(nil, typ)).Serialize()...)
		data := nl.NewRtAttr(unix.NFTA_OBJ_DATA|unix.NLA_F_NESTED, nil)
		data.AddRtAttr(unix.NFTA_COUNTER_BYTES, binary.BigEndian.AppendUint64(nil, packets*60))
		data.AddRtAttr(unix.NFTA_COUNTER_PACKETS, binary.BigEndian.AppendUint64(nil, packets))
		return append(b, data.Serialize()...)
	}
	got := map[string]uint64{}
	for _, m := range [][]byte{
		msg(unix.NFPROTO_BRIDGE, hostnet.Table, "spoof_web-1", unix.NFT_OBJECT_COUNTER, 7),
		msg(unix.NFPROTO_BRIDGE, hostnet.Table, "spoof_vm", unix.NFT_OBJECT_COUNTER, 0),
		msg(unix.NFPROTO_BRIDGE, hostnet.Table, "other", unix.NFT_OBJECT_COUNTER, 9),
		msg(unix.NFPROTO_BRIDGE, "elsewhere", "spoof_y", unix.NFT_OBJECT_COUNTER, 9),
		msg(unix.NFPROTO_BRIDGE, hostnet.Table, "spoof_q", 2, 9), // a quota
		msg(unix.NFPROTO_INET, hostnet.Table, "spoof_x", unix.NFT_OBJECT_COUNTER, 9),
	} {
		if err := parseSpoofCounterMsg(m, got); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || got["web-1"] != 7 || got["vm"] != 0 {
		t.Errorf("parsed %v, want web-1:7 vm:0", got)
	}
	if err := parseSpoofCounterMsg([]byte{7}, got); err == nil {
		t.Error("short message accepted")
	}
}

func TestPortStatsJoin(t *testing.T) {
	mk := func(index, master int, name, alias string, st *netlink.LinkStatistics) netlink.Link {
		a := netlink.NewLinkAttrs()
		a.Index, a.MasterIndex, a.Name, a.Alias, a.Statistics = index, master, name, alias, st
		return &netlink.Device{LinkAttrs: a}
	}
	links := []netlink.Link{
		mk(1, 0, "lo", "", nil),
		mk(2, 0, "vnbr-blue", datapath.BridgeAlias("blue"), nil),
		mk(3, 0, "foreign-br", "", nil),
		mk(10, 2, "vnet-b", datapath.PortAlias("b"), &netlink.LinkStatistics{RxPackets: 1, TxPackets: 2, RxBytes: 3, TxBytes: 4,
			RxDropped: 5, TxDropped: 6, RxErrors: 7, TxErrors: 8}),
		mk(11, 2, "vnet-a", datapath.PortAlias("a"), &netlink.LinkStatistics{RxPackets: 10}),
		mk(12, 0, "vnet-loose", datapath.PortAlias("loose"), &netlink.LinkStatistics{RxPackets: 99}), // not enslaved yet
		mk(13, 3, "veth-other", "", &netlink.LinkStatistics{RxPackets: 99}),                          // someone else's
		mk(14, 3, "vnet-c", datapath.PortAlias("c"), &netlink.LinkStatistics{RxPackets: 99}),         // ours, in a bridge that is not
	}
	got := portStats(links, map[string]uint64{"b": 42, "gone": 1})
	want := []datapath.PortStats{
		{Port: "a", Network: "blue", RxPackets: 10},
		{Port: "b", Network: "blue", RxPackets: 1, TxPackets: 2, RxBytes: 3, TxBytes: 4, RxDropped: 5, TxDropped: 6, RxErrors: 7, TxErrors: 8, SpoofedPackets: 42},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("port %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestLinuxPortStats checks the counters against traffic of known size in a
// host namespace of its own.
func TestLinuxPortStats(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := &hostBed{t: t, ns: newNetns(t, "vnt-ls-"), ctx: ctx}
	blue := model.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.74.0.0/24"), Gateway: netip.MustParseAddr("10.74.0.1"), MTU: 1500}
	a1, a2 := h.port("sa1", "blue", "10.74.0.5"), h.port("sa2", "blue", "10.74.0.6")
	var b *Backend
	h.do("set up", func() (err error) {
		if b, err = New(ctx, "vnbr", nil); err != nil {
			return err
		}
		if err := b.EnsureNetwork(ctx, blue); err != nil {
			return err
		}
		for _, p := range []model.Port{a1, a2} {
			if _, err := b.AttachPort(ctx, blue, p); err != nil {
				return err
			}
		}
		return nil
	})
	// A link marked as a port but in no bridge is not reported.
	testbed.Run(t, "ip", "-n", h.ns, "link", "add", "vnloose", "type", "veth", "peer", "name", "vnloose-p")
	testbed.Run(t, "ip", "-n", h.ns, "link", "set", "vnloose", "alias", datapath.PortAlias("loose"))

	stats := func() map[string]datapath.PortStats {
		t.Helper()
		var list []datapath.PortStats
		h.do("port stats", func() (err error) { list, err = b.PortStats(ctx); return err })
		m := map[string]datapath.PortStats{}
		for _, s := range list {
			m[s.Port] = s
		}
		return m
	}
	before := stats()
	if len(before) != 2 || before["sa1"].Network != "blue" || before["sa2"].Network != "blue" {
		t.Fatalf("before traffic: %+v, want sa1 and sa2 in blue", before)
	}

	const n, size = 5, 1000 // ICMP payload; the frame is 42 bytes more
	out, err := exec.Command("ip", "netns", "exec", a1.Netns, "ping", "-n", "-q", "-c", "5", "-i", "0.05", "-s", "1000", "-W", "1", "10.74.0.6").CombinedOutput()
	if err != nil {
		t.Fatalf("ping sa1 -> sa2: %v\n%s", err, out)
	}
	testbed.Run(t, "ip", "-n", a1.Netns, "addr", "add", "10.74.0.77/24", "dev", "eth0")
	_ = exec.Command("ip", "netns", "exec", a1.Netns, "ping", "-n", "-q", "-c", "2", "-i", "0.05", "-W", "1", "-I", "10.74.0.77", "10.74.0.6").Run()

	after := stats()
	if len(after) != 2 {
		t.Fatalf("after traffic: %+v, want sa1 and sa2 only", after)
	}
	rise := func(port, what string, got, was, least uint64) {
		if got-was < least || got < was {
			t.Errorf("%s %s: %d -> %d, want a rise of at least %d", port, what, was, got, least)
		}
	}
	// The switch received the requests from sa1 and sent them to sa2; the
	// replies went the other way.
	rise("sa1", "rx packets", after["sa1"].RxPackets, before["sa1"].RxPackets, n)
	rise("sa1", "rx bytes", after["sa1"].RxBytes, before["sa1"].RxBytes, n*size)
	rise("sa1", "tx packets", after["sa1"].TxPackets, before["sa1"].TxPackets, n)
	rise("sa2", "rx packets", after["sa2"].RxPackets, before["sa2"].RxPackets, n)
	rise("sa2", "tx bytes", after["sa2"].TxBytes, before["sa2"].TxBytes, n*size)
	rise("sa1", "spoofed packets", after["sa1"].SpoofedPackets, before["sa1"].SpoofedPackets, 1)
	if after["sa2"].SpoofedPackets != 0 {
		t.Errorf("sa2 spoofed packets %d, want 0", after["sa2"].SpoofedPackets)
	}

	h.do("detach sa2", func() error { return b.DetachPort(ctx, blue, a2) })
	if got := stats(); len(got) != 1 || got["sa1"].Port != "sa1" {
		t.Errorf("after detaching sa2: %+v, want sa1 only", got)
	}
}

// BenchmarkPortStats1000 reads 1,000 ports (veth pairs in one bridge, each
// with its spoof counter) in a host namespace of its own: the Linux side of a
// scrape of a big host.
func BenchmarkPortStats1000(b *testing.B) {
	testbed.Need(b, os.Geteuid() == 0, "root: the benchmark creates a network namespace")
	const n = 1000
	// The peers live in a namespace apart, as the workloads' ends do: the
	// host's dump holds only the host ends.
	ns, peers := testbed.UniqueName("vnt-lb-"), testbed.UniqueName("vnt-lp-")
	for _, n := range []string{ns, peers} {
		testbed.Run(b, "ip", "netns", "add", n)
		b.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
	}
	var links, rules strings.Builder
	fmt.Fprintf(&links, "link add vnbr-bench type bridge\nlink set vnbr-bench alias %s\n", datapath.BridgeAlias("bench"))
	fmt.Fprintf(&rules, "add table bridge %s\n", hostnet.Table)
	for i := range n {
		name := fmt.Sprintf("p%04d", i)
		fmt.Fprintf(&links, "link add vb%s type veth peer name vp%s netns %s\nlink set vb%s alias %s master vnbr-bench\n", name, name, peers, name, datapath.PortAlias(name))
		fmt.Fprintf(&rules, "add counter bridge %s %s\n", hostnet.Table, SpoofCounter(name))
	}
	batch := exec.Command("ip", "-n", ns, "-batch", "-")
	batch.Stdin = strings.NewReader(links.String())
	if out, err := batch.CombinedOutput(); err != nil {
		b.Fatalf("ip -batch: %v\n%s", err, out)
	}
	nft := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(rules.String())
	if out, err := nft.CombinedOutput(); err != nil {
		b.Fatalf("nft: %v\n%s", err, out)
	}
	be := &Backend{}
	ctx := context.Background()
	b.ReportAllocs()
	err := testbed.InNetns(ns, func() error {
		for b.Loop() {
			stats, err := be.PortStats(ctx)
			if err != nil {
				return err
			}
			if len(stats) != n {
				return fmt.Errorf("%d ports, want %d", len(stats), n)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// parseSpoofCounters reads the spoof counters from `nft -j list counters`
// output: the oracle the netlink dump is compared with.
func parseSpoofCounters(data []byte) (map[string]uint64, error) {
	var list struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Table   string `json:"table"`
				Family  string `json:"family"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("parse nft counters: %w", err)
	}
	out := map[string]uint64{}
	for _, o := range list.Nftables {
		c := o.Counter
		// The family and table are checked because the command names them
		// and a future nft could list more; only our counters may count.
		if c == nil || c.Family != "bridge" || c.Table != hostnet.Table {
			continue
		}
		if port, ok := strings.CutPrefix(c.Name, spoofCounterPx); ok {
			out[port] = c.Packets
		}
	}
	return out, nil
}

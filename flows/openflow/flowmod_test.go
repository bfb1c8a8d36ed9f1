package openflow

import (
	"net/netip"
	"testing"
)

// typicalFlowMod is the shape of flow ovs-vnet's pipeline writes most: a
// cookie naming its owner, a few exact and prefix fields, a register load
// through set-field, output, and a jump to the next table.
func typicalFlowMod() *FlowMod {
	return &FlowMod{
		Cookie: 0x00a1000000000007, CookieMask: ^uint64(0),
		TableID: 10, Command: FlowAdd, Priority: 1000,
		BufferID: NoBuffer, OutPort: PortAny, OutGroup: GroupAny,
		Flags: FlowSendFlowRemoved,
		Match: Match{Fields: []OXM{
			InPort(4),
			EthType(EthTypeIPv4),
			IPProto(IPProtoTCP),
			IPv4DstPrefix(netip.MustParsePrefix("10.244.1.0/24")),
			TCPDst(443),
		}},
		Instructions: []Instruction{
			ApplyActions{Actions: []Action{ActionSetField{Field: Reg(0, 7)}, ActionOutput{Port: 5}}},
			GotoTable{Table: 20},
		},
	}
}

func TestFlowGolden(t *testing.T) {
	testGolden(t, []goldenCase{
		{"flow_mod_add", 0x30, typicalFlowMod()},
		{"flow_mod_delete_by_cookie", 0x31, &FlowMod{
			Cookie: 0x00a1000000000000, CookieMask: 0xffff000000000000,
			TableID: TableAll, Command: FlowDelete, BufferID: NoBuffer, OutPort: PortAny, OutGroup: GroupAny,
		}},
		{"flow_mod_modify_strict", 0x32, &FlowMod{
			TableID: 0, Command: FlowModifyStrict, Priority: 5, IdleTimeout: 30, HardTimeout: 300,
			BufferID: NoBuffer, OutPort: PortAny, OutGroup: GroupAny, Flags: FlowCheckOverlap | FlowResetCounts,
			Match:        Match{Fields: []OXM{EthType(EthTypeARP)}},
			Instructions: []Instruction{ApplyActions{Actions: []Action{ActionOutput{Port: PortController, MaxLen: MaxLenNoBuffer}}}},
		}},
		{"flow_removed", 0x33, &FlowRemoved{
			Cookie: 0xabc, Priority: 100, Reason: FlowRemovedIdleTimeout, TableID: 3,
			DurationSec: 12, DurationNsec: 345000000, IdleTimeout: 10, PacketCount: 99, ByteCount: 9900,
			Match: Match{Fields: []OXM{InPort(2), EthType(EthTypeIPv6)}},
		}},
		{"flow_stats_request", 0x34, &MultipartRequest{Body: FlowStatsByCookie(TableAll, 0x00a1000000000000, 0xffff000000000000)}},
		{"flow_stats_reply", 0x34, &MultipartReply{Body: &FlowStatsReply{Stats: []FlowStats{
			flowStatsOf(typicalFlowMod(), 3, 4),
			{TableID: 0, Priority: 0, DurationSec: 100, Instructions: []Instruction{ApplyActions{Actions: []Action{ActionOutput{Port: PortNormal}}}}},
		}}}},
		{"aggregate_stats_request", 0x35, &MultipartRequest{Body: &AggregateStatsRequest{FlowStatsRequest{
			TableID: 10, OutPort: PortAny, OutGroup: GroupAny, Match: Match{Fields: []OXM{InPort(4)}},
		}}}},
		{"aggregate_stats_reply", 0x35, &MultipartReply{Body: &AggregateStatsReply{PacketCount: 10, ByteCount: 1500, FlowCount: 3}}},
	})
}

// flowStatsOf is what a switch would report for a flow installed by m.
func flowStatsOf(m *FlowMod, packets, seconds uint64) FlowStats {
	return FlowStats{
		TableID: m.TableID, DurationSec: uint32(seconds), DurationNsec: 1000, Priority: m.Priority,
		IdleTimeout: m.IdleTimeout, HardTimeout: m.HardTimeout, Flags: m.Flags, Cookie: m.Cookie,
		PacketCount: packets, ByteCount: 64 * packets, Match: m.Match, Instructions: m.Instructions,
	}
}

func BenchmarkFlowModEncode(b *testing.B) {
	m := typicalFlowMod()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], 1, m); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkFlowModDecode(b *testing.B) {
	raw, err := Marshal(1, typicalFlowMod())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Unmarshal(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlowStatsReplyDecode decodes the joined body of a 10,000-flow
// dump, as a Reassembler hands it over (one reply no single message could
// carry).
func BenchmarkFlowStatsReplyDecode(b *testing.B) {
	const n = 10000
	stats := make([]FlowStats, n)
	for i := range stats {
		m := typicalFlowMod()
		m.Cookie += uint64(i)
		m.Match.Fields[0] = InPort(uint32(i))
		stats[i] = flowStatsOf(m, uint64(i), 60)
	}
	body, err := (&MultipartReply{Body: &FlowStatsReply{Stats: stats}}).appendBody(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var m MultipartReply
		if err := m.decodeBody(body); err != nil {
			b.Fatal(err)
		}
		if got := len(m.Body.(*FlowStatsReply).Stats); got != n {
			b.Fatalf("%d entries", got)
		}
	}
}

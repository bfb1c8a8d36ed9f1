package openflow

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestMultipartGolden(t *testing.T) {
	testGolden(t, []goldenCase{
		{"desc_request", 0x70, &MultipartRequest{Body: &DescRequest{}}},
		{"desc_reply", 0x70, &MultipartReply{Body: &DescReply{
			MfrDesc: "Open vSwitch", HWDesc: "userspace", SWDesc: "3.1.0", SerialNum: "None", DPDesc: "br-int",
		}}},
		{"table_stats_request", 0x71, &MultipartRequest{Body: &TableStatsRequest{}}},
		{"table_stats_reply", 0x71, &MultipartReply{Body: &TableStatsReply{Stats: []TableStats{
			{TableID: 0, ActiveCount: 4, LookupCount: 100, MatchedCount: 90},
			{TableID: 1, ActiveCount: 1, LookupCount: 90, MatchedCount: 90},
		}}}},
		{"queue_stats_request", 0x72, &MultipartRequest{Body: &QueueStatsRequest{PortNo: PortAny, QueueID: QueueAll}}},
		{"queue_stats_reply", 0x72, &MultipartReply{Body: &QueueStatsReply{Stats: []QueueStats{
			{PortNo: 1, QueueID: 0, TxBytes: 1000, TxPackets: 10, TxErrors: 1, DurationSec: 3, DurationNsec: 4},
		}}}},
		{"multipart_request_more", 0x73, &MultipartRequest{Flags: MultipartMore, Body: &PortStatsRequest{PortNo: 1}}},
	})
}

// The vectors carry an experimenter multipart of an unknown experimenter,
// which round-trips generically; ovs-ofctl cannot print it, so there is no
// golden file.
func TestExperimenterMultipartRoundTrip(t *testing.T) {
	for _, m := range []Message{
		&MultipartRequest{Body: &ExperimenterRequest{ExperimenterMultipart{Experimenter: 0xdeadbeaf, ExpType: 1, Data: []byte("x")}}},
		&MultipartReply{Flags: MultipartMore, Body: &ExperimenterReply{ExperimenterMultipart{Experimenter: 0xdeadbeaf, ExpType: 2}}},
	} {
		raw, err := Marshal(3, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, back, err := Unmarshal(raw); err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("%v: %#v", err, back)
		}
	}
	onf := &MultipartRequest{Body: &ExperimenterRequest{ExperimenterMultipart{Experimenter: vendorONF, ExpType: 1870}}}
	if _, err := Marshal(1, onf); err == nil {
		t.Fatal("ONF experimenter multipart encoded generically")
	}
}

// replyParts splits stats into messages of at most per entries each, with
// MultipartMore on all but the last, as a switch does with a long dump.
func replyParts(t testing.TB, xid uint32, stats []FlowStats, per int) [][]byte {
	t.Helper()
	var parts [][]byte
	for i := 0; i < len(stats) || i == 0; i += per {
		end := min(i+per, len(stats))
		m := &MultipartReply{Body: &FlowStatsReply{Stats: stats[i:end]}}
		if end < len(stats) {
			m.Flags = MultipartMore
		}
		raw, err := Marshal(xid, m)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, raw)
	}
	return parts
}

func manyFlowStats(n int) []FlowStats {
	stats := make([]FlowStats, n)
	for i := range stats {
		m := typicalFlowMod()
		m.Cookie += uint64(i)
		stats[i] = flowStatsOf(m, uint64(i), 1)
	}
	return stats
}

func TestReassembler(t *testing.T) {
	stats := manyFlowStats(1000) // about 160 kB: needs several messages
	parts := replyParts(t, 9, stats, 300)
	var a Reassembler
	for i, p := range parts {
		reply, done, err := a.Add(p)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if done != (i == len(parts)-1) {
			t.Fatalf("part %d of %d: done=%v", i, len(parts), done)
		}
		if done {
			want := &MultipartReply{Body: &FlowStatsReply{Stats: stats}}
			if !reflect.DeepEqual(reply, want) {
				t.Fatalf("joined reply has %d entries, differs from the %d sent", len(reply.Body.(*FlowStatsReply).Stats), len(stats))
			}
		}
	}
	// Ready for the next reply, a single message.
	single := replyParts(t, 10, stats[:2], 10)
	if reply, done, err := a.Add(single[0]); err != nil || !done || len(reply.Body.(*FlowStatsReply).Stats) != 2 {
		t.Fatalf("second reply: %v %v", done, err)
	}
}

func TestReassemblerLimits(t *testing.T) {
	parts := replyParts(t, 9, manyFlowStats(100), 10)
	a := Reassembler{MaxBytes: 3 * (len(parts[0]) - HeaderLen - multipartHeaderLen)}
	var err error
	for i := 0; i < len(parts) && err == nil; i++ {
		_, _, err = a.Add(parts[i])
	}
	if err == nil {
		t.Fatal("reply beyond MaxBytes accepted")
	}

	a = Reassembler{MaxParts: 2}
	empty, _ := Marshal(9, &MultipartReply{Flags: MultipartMore, Body: &FlowStatsReply{}})
	for range 2 {
		if _, _, err := a.Add(empty); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := a.Add(empty); err == nil {
		t.Fatal("third part accepted with MaxParts 2")
	}
}

func TestReassemblerRejectsMixedParts(t *testing.T) {
	parts := replyParts(t, 9, manyFlowStats(20), 10)
	other := replyParts(t, 8, manyFlowStats(20), 10)
	tableStats, _ := Marshal(9, &MultipartReply{Body: &TableStatsReply{}})
	for name, second := range map[string][]byte{"other xid": other[1], "other type": tableStats, "not a reply": parts[1][:HeaderLen]} {
		var a Reassembler
		if _, _, err := a.Add(parts[0]); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Add(second); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMultipartEntryLengthsChecked(t *testing.T) {
	raw, _ := Marshal(1, &MultipartReply{Body: &FlowStatsReply{Stats: manyFlowStats(2)}})
	entry := HeaderLen + multipartHeaderLen
	for _, n := range []uint16{0, 47, 0xffff} {
		b := append([]byte(nil), raw...)
		binary.BigEndian.PutUint16(b[entry:], n)
		if _, _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("flow stats length %d: %v", n, err)
		}
	}
	short, _ := Marshal(1, &MultipartReply{Body: &PortStatsReply{Stats: []PortStats{{PortNo: 1}}}})
	short = short[:len(short)-8]
	binary.BigEndian.PutUint16(short[2:], uint16(len(short)))
	if _, _, err := Unmarshal(short); !errors.Is(err, ErrMalformed) {
		t.Errorf("port stats of 104 bytes: %v", err)
	}
}

func TestTableFeaturesGolden(t *testing.T) {
	ids := func(types ...uint16) []byte { // instruction or action ids: type, length 4
		var b []byte
		for _, typ := range types {
			b = binary.BigEndian.AppendUint16(b, typ)
			b = binary.BigEndian.AppendUint16(b, 4)
		}
		return b
	}
	oxms := func(fields ...OXM) []byte { // OXM headers without values
		var b []byte
		for _, f := range fields {
			b = binary.BigEndian.AppendUint16(b, f.Class)
			b = append(b, f.Field<<1, uint8(len(f.Value)))
		}
		return b
	}
	props := []TableFeatureProp{
		{Type: 0, Data: ids(1, 4)},                   // instructions: goto_table, apply_actions
		{Type: 2, Data: []byte{1, 2}},                // next tables
		{Type: 4, Data: ids(0)},                      // write actions: output
		{Type: 6, Data: ids(0, 25)},                  // apply actions: output, set_field
		{Type: 8, Data: oxms(InPort(0), EthType(0))}, // match
		{Type: 10, Data: oxms(EthType(0))},           // wildcards
		{Type: 12},                                   // write set-field
		{Type: 14},                                   // apply set-field
		{Type: 0xfffe, Data: []byte{0, 0, 0x23, 0x20, 0, 0, 0, 1}}, // experimenter
	}
	testGolden(t, []goldenCase{
		{"table_features_request", 0x74, &MultipartRequest{Body: &TableFeaturesRequest{}}},
		{"table_features_reply", 0x74, &MultipartReply{Body: &TableFeaturesReply{Tables: []TableFeatures{
			{TableID: 0, Name: "classifier", MetadataMatch: ^uint64(0), MetadataWrite: ^uint64(0), MaxEntries: 1000000, Properties: props},
		}}}},
	})
}

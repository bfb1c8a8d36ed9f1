package openflow

import "testing"

func TestGroupGolden(t *testing.T) {
	buckets := []Bucket{
		{Weight: 50, WatchPort: PortAny, WatchGroup: GroupAny, Actions: []Action{ActionOutput{Port: 1}}},
		{Weight: 50, WatchPort: PortAny, WatchGroup: GroupAny, Actions: []Action{ActionSetField{Field: Reg(2, 9)}, ActionOutput{Port: 2}}},
	}
	testGolden(t, []goldenCase{
		{"group_mod_add_select", 0x50, &GroupMod{Command: GroupAdd, GroupType: GroupTypeSelect, GroupID: 7, Buckets: buckets}},
		{"group_mod_ff", 0x51, &GroupMod{Command: GroupModify, GroupType: GroupTypeFF, GroupID: 8, Buckets: []Bucket{
			{WatchPort: 1, WatchGroup: GroupAny, Actions: []Action{ActionOutput{Port: 1}}},
			{WatchPort: 2, WatchGroup: GroupAny, Actions: []Action{ActionOutput{Port: 2}}},
		}}},
		{"group_mod_delete_all", 0x52, &GroupMod{Command: GroupDelete, GroupID: GroupAll}},
		{"group_stats_request", 0x53, &MultipartRequest{Body: &GroupStatsRequest{GroupID: GroupAll}}},
		{"group_stats_reply", 0x53, &MultipartReply{Body: &GroupStatsReply{Stats: []GroupStats{
			{GroupID: 7, RefCount: 2, PacketCount: 30, ByteCount: 3000, DurationSec: 9, Buckets: []BucketCounter{{10, 1000}, {20, 2000}}},
			{GroupID: 8},
		}}}},
		{"group_desc_request", 0x54, &MultipartRequest{Body: &GroupDescRequest{}}},
		{"group_desc_reply", 0x54, &MultipartReply{Body: &GroupDescReply{Groups: []GroupDesc{
			{GroupType: GroupTypeSelect, GroupID: 7, Buckets: buckets},
			{GroupType: GroupTypeIndirect, GroupID: 9, Buckets: []Bucket{{WatchPort: PortAny, WatchGroup: GroupAny}}},
		}}}},
		{"group_features_request", 0x55, &MultipartRequest{Body: &GroupFeaturesRequest{}}},
		{"group_features_reply", 0x55, &MultipartReply{Body: &GroupFeaturesReply{
			Types: 0xf, Capabilities: 0x7, MaxGroups: [4]uint32{0xffffff00, 0xffffff00, 0xffffff00, 0xffffff00},
			Actions: [4]uint32{1 | 1<<22 | 1<<25, 1, 1, 1},
		}}},
	})
}

func TestBucketLengthChecked(t *testing.T) {
	raw, _ := Marshal(1, &GroupMod{GroupType: GroupTypeAll, GroupID: 1, Buckets: []Bucket{{Actions: []Action{ActionOutput{Port: 1}}}}})
	for _, n := range []byte{0, 8, 0x40} {
		b := append([]byte(nil), raw...)
		b[17] = n
		if _, _, err := Unmarshal(b); err == nil {
			t.Errorf("bucket length %d decoded", n)
		}
	}
}

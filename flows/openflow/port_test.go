package openflow

import "testing"

var testPort = Port{
	PortNo:     7,
	HWAddr:     [6]byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x07},
	Name:       "veth-a1b2c3",
	Config:     PortConfigNoPacketIn,
	State:      PortStateLive,
	Curr:       1<<5 | 1<<11, // 1GB_FD, COPPER
	Advertised: 1 << 5,
	Supported:  1<<5 | 1<<6,
	CurrSpeed:  1000000,
	MaxSpeed:   10000000,
}

func TestPortGolden(t *testing.T) {
	testGolden(t, []goldenCase{
		{"port_status", 0, &PortStatus{Reason: PortReasonModify, Port: testPort}},
		{"port_mod", 0x10, &PortMod{PortNo: 7, HWAddr: testPort.HWAddr, Config: PortConfigDown, Mask: PortConfigDown | PortConfigNoFwd}},
		{"port_stats_request", 0x11, &MultipartRequest{Body: &PortStatsRequest{PortNo: PortAny}}},
		{"port_stats_reply", 0x11, &MultipartReply{Body: &PortStatsReply{Stats: []PortStats{
			{PortNo: 1, RxPackets: 10, TxPackets: 20, RxBytes: 1000, TxBytes: 2000, RxDropped: 1, TxDropped: 2,
				RxErrors: 3, TxErrors: 4, RxFrameErr: 5, RxOverErr: 6, RxCRCErr: 7, Collisions: 8, DurationSec: 60, DurationNsec: 5e8},
			{PortNo: PortLocal, DurationSec: 61},
		}}}},
		{"port_desc_request", 0x12, &MultipartRequest{Body: &PortDescRequest{}}},
		{"port_desc_reply", 0x12, &MultipartReply{Flags: MultipartMore, Body: &PortDescReply{Ports: []Port{testPort,
			{PortNo: PortLocal, Name: "br-int", Config: PortConfigDown, State: PortStateLinkDown}}}}},
		{"queue_get_config_request", 0x13, &QueueGetConfigRequest{PortNo: 1}},
		{"queue_get_config_reply", 0x13, &QueueGetConfigReply{PortNo: 1, Queues: []PacketQueue{
			{QueueID: 0, PortNo: 1, Properties: []QueueProp{{Type: QueuePropMinRate, Rate: 100}, {Type: QueuePropMaxRate, Rate: 500}}},
			{QueueID: 1, PortNo: 1},
		}}},
	})
}

func TestPortNameLimits(t *testing.T) {
	// A name that fills all 16 bytes has no NUL; switches send such names,
	// so it must still round-trip.
	full := &PortStatus{Port: Port{Name: "0123456789abcdef"}}
	raw, err := Marshal(1, full)
	if err != nil {
		t.Fatal(err)
	}
	if _, back, err := Unmarshal(raw); err != nil || back.(*PortStatus).Port.Name != full.Port.Name {
		t.Fatalf("16-byte name: %v %+v", err, back)
	}
	if _, err := Marshal(1, &PortStatus{Port: Port{Name: "0123456789abcdefg"}}); err == nil {
		t.Fatal("17-byte port name encoded")
	}
}

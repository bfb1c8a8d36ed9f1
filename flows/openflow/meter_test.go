package openflow

import "testing"

func TestMeterGolden(t *testing.T) {
	bands := []MeterBand{
		{Type: MeterBandDrop, Rate: 1000, BurstSize: 100},
		{Type: MeterBandDSCPRemark, Rate: 500, BurstSize: 50, PrecLevel: 1},
	}
	testGolden(t, []goldenCase{
		{"meter_mod_add", 0x60, &MeterMod{Command: MeterAdd, Flags: MeterFlagKbps | MeterFlagBurst | MeterFlagStats, MeterID: 1, Bands: bands}},
		{"meter_mod_delete", 0x61, &MeterMod{Command: MeterDelete, MeterID: MeterAll}},
		{"meter_stats_request", 0x62, &MultipartRequest{Body: &MeterStatsRequest{MeterID: MeterAll}}},
		{"meter_stats_reply", 0x62, &MultipartReply{Body: &MeterStatsReply{Stats: []MeterStats{
			{MeterID: 1, FlowCount: 2, PacketInCount: 100, ByteInCount: 6400, DurationSec: 5, DurationNsec: 10,
				Bands: []MeterBandStats{{1, 64}, {2, 128}}},
		}}}},
		{"meter_config_request", 0x63, &MultipartRequest{Body: &MeterConfigRequest{MeterID: 1}}},
		{"meter_config_reply", 0x63, &MultipartReply{Body: &MeterConfigReply{Configs: []MeterConfig{
			{Flags: MeterFlagPktps, MeterID: 1, Bands: bands[:1]},
			{Flags: MeterFlagKbps | MeterFlagBurst, MeterID: 2, Bands: bands},
		}}}},
		{"meter_features_request", 0x64, &MultipartRequest{Body: &MeterFeaturesRequest{}}},
		{"meter_features_reply", 0x64, &MultipartReply{Body: &MeterFeaturesReply{
			MaxMeter: 65536, BandTypes: 1<<MeterBandDrop | 1<<MeterBandDSCPRemark, Capabilities: 0xf, MaxBands: 1, MaxColor: 0,
		}}},
	})
}

func TestMeterBandRoundTripExperimenter(t *testing.T) {
	m := &MeterMod{Command: MeterAdd, MeterID: 3, Bands: []MeterBand{
		{Type: MeterBandExperimenter, Rate: 1, BurstSize: 2, Experimenter: 0x1234, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	}}
	raw, err := Marshal(1, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, back, err := Unmarshal(raw); err != nil || len(back.(*MeterMod).Bands[0].Data) != 8 {
		t.Fatalf("%v %+v", err, back)
	}
	m.Bands[0].Data = m.Bands[0].Data[:3]
	if _, err := Marshal(1, m); err == nil {
		t.Fatal("experimenter band data of 3 bytes encoded")
	}
	if _, err := Marshal(1, &MeterMod{Bands: []MeterBand{{Type: MeterBandDrop, PrecLevel: 1}}}); err == nil {
		t.Fatal("prec_level on a drop band encoded")
	}
}

package openflow

import (
	"errors"
	"testing"
)

// arpRequest is a broadcast ARP who-has 10.0.0.2 from 10.0.0.1.
var arpRequest = []byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06,
	0, 1, 0x08, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 1, 10, 0, 0, 1,
	0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
}

func TestPacketGolden(t *testing.T) {
	testGolden(t, []goldenCase{
		{"packet_in", 0, &PacketIn{
			BufferID: NoBuffer, TotalLen: uint16(len(arpRequest)), Reason: PacketInAction, TableID: 7, Cookie: 0xfeed,
			Match: Match{Fields: []OXM{InPort(3), Reg(1, 0x42)}},
			Data:  arpRequest,
		}},
		{"packet_in_no_match_empty", 0, &PacketIn{BufferID: 17, Reason: PacketInNoMatch, Match: Match{Fields: []OXM{InPort(1)}}}},
		{"packet_out", 0x40, &PacketOut{
			BufferID: NoBuffer, InPort: PortController,
			Actions: []Action{ActionOutput{Port: 3}},
			Data:    arpRequest,
		}},
		{"packet_out_table", 0x41, &PacketOut{
			BufferID: NoBuffer, InPort: 2,
			Actions: []Action{ActionSetField{Field: Reg(0, 1)}, ActionOutput{Port: PortTable}},
			Data:    arpRequest,
		}},
	})
}

func TestPacketOutActionsLenChecked(t *testing.T) {
	raw, _ := Marshal(1, &PacketOut{BufferID: NoBuffer, InPort: PortController, Actions: []Action{ActionOutput{Port: 1}}})
	raw[16], raw[17] = 0x01, 0x00 // actions_len 256, beyond the message
	if _, _, err := Unmarshal(raw); !errors.Is(err, ErrMalformed) {
		t.Fatalf("actions_len beyond the message: %v", err)
	}
}

package openflow

import (
	"bytes"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// The golden tests encode Go values and have OVS decode them: testdata/
// <case>.golden holds what `ovs-ofctl ofp-print` prints for our bytes. After
// a deliberate change of encoding, or a new case, regenerate them with
//
//	go test ./flows/openflow -run Golden -update
//
// and review the diff: the golden text is the independent check that the
// bytes mean what the Go value says.
type goldenCase struct {
	name string
	xid  uint32
	msg  Message
}

// testGolden checks, for each case, that the message survives
// Marshal/Unmarshal as the same value and the same bytes, and that
// ovs-ofctl prints it as the golden file says.
func testGolden(t *testing.T, cases []goldenCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := Marshal(c.xid, c.msg)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			h, back, err := Unmarshal(raw)
			if err != nil {
				t.Fatalf("decode %x: %v", raw, err)
			}
			if h.Xid != c.xid || !reflect.DeepEqual(back, c.msg) {
				t.Fatalf("decoded xid %#x\n %#v\nwant xid %#x\n %#v", h.Xid, back, c.xid, c.msg)
			}
			if again, err := Marshal(h.Xid, back); err != nil || !bytes.Equal(again, raw) {
				t.Fatalf("re-encoded %x (%v), want %x", again, err, raw)
			}
			golden.Check(t, filepath.Join("testdata", c.name+".golden"), ofpPrint(t, raw))
		})
	}
}

// ofpPrint runs `ovs-ofctl ofp-print` on one message. The install script
// provides ovs-ofctl, so under `make test` its absence is a failure, not a skip.
func ofpPrint(t *testing.T, raw []byte) string {
	t.Helper()
	_, err := exec.LookPath("ovs-ofctl")
	testbed.Need(t, err == nil, "ovs-ofctl")
	out, err := exec.Command("ovs-ofctl", "ofp-print", hex.EncodeToString(raw)).Output()
	if err != nil {
		t.Fatalf("ovs-ofctl ofp-print %x: %v", raw, err)
	}
	return string(out)
}

func TestConfigGolden(t *testing.T) {
	testGolden(t, []goldenCase{
		{"get_config_request", 1, &GetConfigRequest{}},
		{"get_config_reply", 2, &GetConfigReply{SwitchConfig{Flags: FragReasm, MissSendLen: 128}}},
		{"set_config", 3, &SetConfig{SwitchConfig{Flags: FragDrop, MissSendLen: MaxLenNoBuffer}}},
		{"get_async_request", 4, &GetAsyncRequest{}},
		{"get_async_reply", 5, &GetAsyncReply{AsyncConfig{
			PacketInMask:    [2]uint32{0x7, 0x0},
			PortStatusMask:  [2]uint32{0x7, 0x7},
			FlowRemovedMask: [2]uint32{0xf, 0x0},
		}}},
		{"set_async", 6, &SetAsync{AsyncConfig{PacketInMask: [2]uint32{1 << uint(PacketInAction), 0}, PortStatusMask: [2]uint32{7, 7}}}},
		{"role_request", 7, &RoleRequest{RoleConfig{Role: RoleMaster, GenerationID: 42}}},
		{"role_reply", 8, &RoleReply{RoleConfig{Role: RoleSlave, GenerationID: 0x0102030405060708}}},
		{"table_mod", 9, &TableMod{TableID: 3}},
	})
}

func TestSwitchConfigRejectsTrailingBytes(t *testing.T) {
	raw, _ := Marshal(1, &SetConfig{})
	raw = append(raw, 0, 0, 0, 0)
	raw[3] = byte(len(raw))
	if _, _, err := Unmarshal(raw); err == nil {
		t.Fatal("set_config with 4 trailing bytes decoded")
	}
}

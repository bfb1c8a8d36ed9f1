package openflow

import (
	"errors"
	"strings"
	"testing"
)

func TestErrorGolden(t *testing.T) {
	fm, err := Marshal(0x1234, &FlowMod{Command: FlowAdd, BufferID: NoBuffer, OutPort: PortAny, OutGroup: GroupAny, Priority: 100,
		Match: Match{Fields: []OXM{InPort(1)}}, Instructions: []Instruction{GotoTable{Table: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	testGolden(t, []goldenCase{
		{"error_bad_match", 0x1234, &ErrorMsg{ErrType: ErrorTypeBadMatch, Code: 3, Data: fm}},
		{"error_hello_failed", 0, &ErrorMsg{ErrType: ErrorTypeHelloFailed, Code: 0, Data: []byte("no common version")}},
		// OVS's answer to a commit of an unknown bundle, on OpenFlow 1.3:
		// ONF experimenter error 2302 (OFPBFC_BAD_ID).
		{"error_bundle_bad_id", 0x55, &ErrorMsg{ErrType: ErrorTypeExperimenter, Code: 2302, Experimenter: vendorONF, Data: fm[:16]}},
	})
}

func TestErrorRequestCorrelation(t *testing.T) {
	fm, _ := Marshal(0xabcdef01, &FlowMod{Command: FlowDelete, OutPort: PortAny, OutGroup: GroupAny})
	raw, _ := Marshal(0xabcdef01, &ErrorMsg{ErrType: ErrorTypeFlowModFailed, Code: 6, Data: fm[:12]})
	_, m, err := Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	e := m.(*ErrorMsg)
	h, err := e.Request()
	if err != nil || h.Xid != 0xabcdef01 || h.Type != TypeFlowMod || int(h.Length) != len(fm) {
		t.Fatalf("echoed header %+v, %v", h, err)
	}
	var asErr error = e
	if !strings.Contains(asErr.Error(), "FLOW_MOD_FAILED") || !strings.Contains(asErr.Error(), "0xabcdef01") {
		t.Fatalf("error text %q", asErr.Error())
	}
	if _, err := (&ErrorMsg{ErrType: ErrorTypeBadRequest, Data: []byte{4, 14}}).Request(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short echo: %v", err)
	}
	if _, err := (&ErrorMsg{ErrType: ErrorTypeHelloFailed, Data: []byte("incompatible")}).Request(); err == nil {
		t.Fatal("HELLO_FAILED text parsed as a request header")
	}
	if _, err := Marshal(1, &ErrorMsg{ErrType: ErrorTypeBadRequest, Experimenter: 1}); err == nil {
		t.Fatal("experimenter id on a standard error type encoded")
	}
}

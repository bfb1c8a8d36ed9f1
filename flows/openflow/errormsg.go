package openflow

import (
	"encoding/binary"
	"fmt"
)

func init() {
	registerSimple[ErrorMsg](TypeError)
}

// ErrorType is ofp_error_type.
type ErrorType uint16

// OpenFlow 1.3 error types. Bundle errors have no type of their own in 1.3:
// OVS reports them as ErrorTypeExperimenter with experimenter ONF and
// exp_type 2300-2320 (the OFPBFC_* codes of 1.4 plus 2300).
const (
	ErrorTypeHelloFailed         ErrorType = 0
	ErrorTypeBadRequest          ErrorType = 1
	ErrorTypeBadAction           ErrorType = 2
	ErrorTypeBadInstruction      ErrorType = 3
	ErrorTypeBadMatch            ErrorType = 4
	ErrorTypeFlowModFailed       ErrorType = 5
	ErrorTypeGroupModFailed      ErrorType = 6
	ErrorTypePortModFailed       ErrorType = 7
	ErrorTypeTableModFailed      ErrorType = 8
	ErrorTypeQueueOpFailed       ErrorType = 9
	ErrorTypeSwitchConfigFailed  ErrorType = 10
	ErrorTypeRoleRequestFailed   ErrorType = 11
	ErrorTypeMeterModFailed      ErrorType = 12
	ErrorTypeTableFeaturesFailed ErrorType = 13
	ErrorTypeExperimenter        ErrorType = 0xffff
)

var errorTypeNames = map[ErrorType]string{
	ErrorTypeHelloFailed: "HELLO_FAILED", ErrorTypeBadRequest: "BAD_REQUEST", ErrorTypeBadAction: "BAD_ACTION",
	ErrorTypeBadInstruction: "BAD_INSTRUCTION", ErrorTypeBadMatch: "BAD_MATCH", ErrorTypeFlowModFailed: "FLOW_MOD_FAILED",
	ErrorTypeGroupModFailed: "GROUP_MOD_FAILED", ErrorTypePortModFailed: "PORT_MOD_FAILED",
	ErrorTypeTableModFailed: "TABLE_MOD_FAILED", ErrorTypeQueueOpFailed: "QUEUE_OP_FAILED",
	ErrorTypeSwitchConfigFailed: "SWITCH_CONFIG_FAILED", ErrorTypeRoleRequestFailed: "ROLE_REQUEST_FAILED",
	ErrorTypeMeterModFailed: "METER_MOD_FAILED", ErrorTypeTableFeaturesFailed: "TABLE_FEATURES_FAILED",
	ErrorTypeExperimenter: "EXPERIMENTER",
}

func (t ErrorType) String() string {
	if s, ok := errorTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("ERROR_TYPE_%d", uint16(t))
}

// ErrorMsg is OFPT_ERROR. For ErrorTypeExperimenter, Code is the exp_type
// and Experimenter the experimenter id (ofp_error_experimenter_msg); for the
// other types Experimenter is zero. Data is the start of the request that
// failed (OpenFlow asks for at least 64 bytes of it), or for HELLO_FAILED an
// ASCII explanation. ErrorMsg is also an error, so a session can return it
// as is.
type ErrorMsg struct {
	ErrType      ErrorType
	Code         uint16
	Experimenter uint32
	Data         []byte
}

func (*ErrorMsg) Type() MsgType { return TypeError }

func (m *ErrorMsg) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(m.ErrType))
	b = binary.BigEndian.AppendUint16(b, m.Code)
	if m.ErrType == ErrorTypeExperimenter {
		b = binary.BigEndian.AppendUint32(b, m.Experimenter)
	} else if m.Experimenter != 0 {
		return b, fmt.Errorf("error type %s carries no experimenter id (got %#x)", m.ErrType, m.Experimenter)
	}
	return append(b, m.Data...), nil
}

func (m *ErrorMsg) decodeBody(b []byte) error {
	r := newReader(b, "error")
	m.ErrType, m.Code = ErrorType(r.u16()), r.u16()
	if m.ErrType == ErrorTypeExperimenter {
		m.Experimenter = r.u32()
	}
	m.Data = append([]byte(nil), r.rest()...)
	return r.err
}

// Request parses the header of the echoed request in Data, so that a
// session can find the request the error answers by its xid. The header's
// length may exceed Data, which holds only the start of the request.
func (m *ErrorMsg) Request() (Header, error) {
	if m.ErrType == ErrorTypeHelloFailed {
		return Header{}, fmt.Errorf("HELLO_FAILED error carries text, not a request: %q", m.Data)
	}
	h, err := ParseHeader(m.Data)
	if err != nil {
		return h, fmt.Errorf("echoed request in %s error: %w", m.ErrType, err)
	}
	return h, nil
}

func (m *ErrorMsg) Error() string {
	if m.ErrType == ErrorTypeExperimenter {
		return fmt.Sprintf("OpenFlow error: experimenter %#x type %d", m.Experimenter, m.Code)
	}
	if m.ErrType == ErrorTypeHelloFailed {
		return fmt.Sprintf("OpenFlow error: %s code %d: %q", m.ErrType, m.Code, m.Data)
	}
	if h, err := m.Request(); err == nil {
		return fmt.Sprintf("OpenFlow error: %s code %d for %s xid %#x", m.ErrType, m.Code, h.Type, h.Xid)
	}
	return fmt.Sprintf("OpenFlow error: %s code %d", m.ErrType, m.Code)
}

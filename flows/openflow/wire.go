// Package openflow is ovs-vnet's OpenFlow 1.3 (wire version 0x04) codec: the
// messages, OXM matches, instructions and actions the controller speaks, with
// the Nicira and ONF extensions that Open vSwitch implements.
//
// Every message type implements Message; Marshal and Unmarshal add and check
// the 8-byte header. Decoding never panics and never trusts a length field
// beyond the bytes it was given: malformed input is an ErrMalformed error,
// input the codec does not model an *UnsupportedError, and a message decoded
// and encoded again reproduces its bytes exactly.
package openflow

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the OpenFlow wire version this package speaks.
const Version uint8 = 0x04

// HeaderLen is the length of ofp_header.
const HeaderLen = 8

// MaxMessageLen is the largest message the 16-bit length field allows.
const MaxMessageLen = 0xffff

// MsgType is ofp_type.
type MsgType uint8

// OpenFlow 1.3 message types.
const (
	TypeHello                 MsgType = 0
	TypeError                 MsgType = 1
	TypeEchoRequest           MsgType = 2
	TypeEchoReply             MsgType = 3
	TypeExperimenter          MsgType = 4
	TypeFeaturesRequest       MsgType = 5
	TypeFeaturesReply         MsgType = 6
	TypeGetConfigRequest      MsgType = 7
	TypeGetConfigReply        MsgType = 8
	TypeSetConfig             MsgType = 9
	TypePacketIn              MsgType = 10
	TypeFlowRemoved           MsgType = 11
	TypePortStatus            MsgType = 12
	TypePacketOut             MsgType = 13
	TypeFlowMod               MsgType = 14
	TypeGroupMod              MsgType = 15
	TypePortMod               MsgType = 16
	TypeTableMod              MsgType = 17
	TypeMultipartRequest      MsgType = 18
	TypeMultipartReply        MsgType = 19
	TypeBarrierRequest        MsgType = 20
	TypeBarrierReply          MsgType = 21
	TypeQueueGetConfigRequest MsgType = 22
	TypeQueueGetConfigReply   MsgType = 23
	TypeRoleRequest           MsgType = 24
	TypeRoleReply             MsgType = 25
	TypeGetAsyncRequest       MsgType = 26
	TypeGetAsyncReply         MsgType = 27
	TypeSetAsync              MsgType = 28
	TypeMeterMod              MsgType = 29
)

var msgTypeNames = map[MsgType]string{
	TypeHello: "HELLO", TypeError: "ERROR", TypeEchoRequest: "ECHO_REQUEST", TypeEchoReply: "ECHO_REPLY",
	TypeExperimenter: "EXPERIMENTER", TypeFeaturesRequest: "FEATURES_REQUEST", TypeFeaturesReply: "FEATURES_REPLY",
	TypeGetConfigRequest: "GET_CONFIG_REQUEST", TypeGetConfigReply: "GET_CONFIG_REPLY", TypeSetConfig: "SET_CONFIG",
	TypePacketIn: "PACKET_IN", TypeFlowRemoved: "FLOW_REMOVED", TypePortStatus: "PORT_STATUS", TypePacketOut: "PACKET_OUT",
	TypeFlowMod: "FLOW_MOD", TypeGroupMod: "GROUP_MOD", TypePortMod: "PORT_MOD", TypeTableMod: "TABLE_MOD",
	TypeMultipartRequest: "MULTIPART_REQUEST", TypeMultipartReply: "MULTIPART_REPLY",
	TypeBarrierRequest: "BARRIER_REQUEST", TypeBarrierReply: "BARRIER_REPLY",
	TypeQueueGetConfigRequest: "QUEUE_GET_CONFIG_REQUEST", TypeQueueGetConfigReply: "QUEUE_GET_CONFIG_REPLY",
	TypeRoleRequest: "ROLE_REQUEST", TypeRoleReply: "ROLE_REPLY", TypeGetAsyncRequest: "GET_ASYNC_REQUEST",
	TypeGetAsyncReply: "GET_ASYNC_REPLY", TypeSetAsync: "SET_ASYNC", TypeMeterMod: "METER_MOD",
}

func (t MsgType) String() string {
	if s, ok := msgTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE_%d", uint8(t))
}

// Header is ofp_header.
type Header struct {
	Version uint8
	Type    MsgType
	Length  uint16
	Xid     uint32
}

// ParseHeader reads the header at the start of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrMalformed, len(b), HeaderLen)
	}
	return Header{Version: b[0], Type: MsgType(b[1]), Length: binary.BigEndian.Uint16(b[2:]), Xid: binary.BigEndian.Uint32(b[4:])}, nil
}

// Message is the body of an OpenFlow message; Marshal adds the header.
type Message interface {
	// Type is the message's ofp_type.
	Type() MsgType
	// appendBody appends the encoded body (everything after the header) to b.
	appendBody(b []byte) ([]byte, error)
	// decodeBody decodes a body, which the caller has bounded to the
	// header's length.
	decodeBody(b []byte) error
}

var (
	// ErrMalformed marks input that breaks the wire format: truncated,
	// inconsistent lengths, bad version, values out of range.
	ErrMalformed = errors.New("malformed OpenFlow message")
	// ErrUnsupported marks well-formed input this codec does not model.
	ErrUnsupported = errors.New("unsupported OpenFlow element")
)

// UnsupportedError names what the codec does not model. errors.Is(err,
// ErrUnsupported) holds for it.
type UnsupportedError struct {
	What string // e.g. "message type 22", "action type 0x0017", "experimenter 0xdeadbeaf"
}

func (e *UnsupportedError) Error() string { return "unsupported OpenFlow " + e.What }

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

func unsupported(format string, args ...any) error {
	return &UnsupportedError{What: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Marshal encodes m as one message with the given xid.
func Marshal(xid uint32, m Message) ([]byte, error) {
	return Append(nil, xid, m)
}

// Append encodes m as one message with the given xid, appended to b.
func Append(b []byte, xid uint32, m Message) ([]byte, error) {
	start := len(b)
	b = append(b, Version, uint8(m.Type()), 0, 0)
	b = binary.BigEndian.AppendUint32(b, xid)
	b, err := m.appendBody(b)
	if err != nil {
		return b[:start], fmt.Errorf("encode %s: %w", m.Type(), err)
	}
	n := len(b) - start
	if n > MaxMessageLen {
		return b[:start], fmt.Errorf("encode %s: %d bytes exceed the OpenFlow maximum of %d", m.Type(), n, MaxMessageLen)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return b, nil
}

// Unmarshal decodes exactly one message. The header's length must equal
// len(b).
func Unmarshal(b []byte) (Header, Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	if h.Version != Version {
		return h, nil, malformed("version 0x%02x, want 0x%02x", h.Version, Version)
	}
	if int(h.Length) != len(b) || h.Length < HeaderLen {
		return h, nil, malformed("header length %d, message has %d bytes", h.Length, len(b))
	}
	m, err := newMessage(h.Type, b[HeaderLen:])
	if err != nil {
		return h, nil, fmt.Errorf("decode %s (xid %#x): %w", h.Type, h.Xid, err)
	}
	if err := m.decodeBody(b[HeaderLen:]); err != nil {
		return h, nil, fmt.Errorf("decode %s (xid %#x): %w", h.Type, h.Xid, err)
	}
	if c, ok := m.(xidChecker); ok {
		if err := c.checkXid(h.Xid, b[HeaderLen:]); err != nil {
			return h, nil, fmt.Errorf("decode %s (xid %#x): %w", h.Type, h.Xid, err)
		}
	}
	return h, m, nil
}

// xidChecker is a message whose decoded body must agree with the header's
// xid, which decodeBody does not see (BundleAdd's inner message).
type xidChecker interface {
	checkXid(xid uint32, body []byte) error
}

// newMessage returns an empty message of the type the header (and, for
// multipart and experimenter messages, the body's subtype) names.
func newMessage(t MsgType, body []byte) (Message, error) {
	if f, ok := messageTypes[t]; ok {
		return f(body)
	}
	return nil, unsupported("message type %d (%s)", uint8(t), t)
}

// messageTypes builds an empty message for a type. Types whose body carries
// a subtype (multipart, experimenter) look at the body to choose.
var messageTypes = map[MsgType]func(body []byte) (Message, error){}

// register adds a message type to the decoder. Each message file registers
// its types in an init function, so adding a type touches only its own file.
func register(t MsgType, f func(body []byte) (Message, error)) {
	if _, dup := messageTypes[t]; dup {
		panic(fmt.Sprintf("openflow: message type %s registered twice", t))
	}
	messageTypes[t] = f
}

// registerSimple registers a message type whose Go type alone decides it.
func registerSimple[T any, PT interface {
	*T
	Message
}](t MsgType) {
	register(t, func([]byte) (Message, error) { return PT(new(T)), nil })
}

package openflow

import (
	"encoding/binary"
	"fmt"
)

func init() {
	registerSimple[GetConfigRequest](TypeGetConfigRequest)
	registerSimple[GetConfigReply](TypeGetConfigReply)
	registerSimple[SetConfig](TypeSetConfig)
	registerSimple[GetAsyncRequest](TypeGetAsyncRequest)
	registerSimple[GetAsyncReply](TypeGetAsyncReply)
	registerSimple[SetAsync](TypeSetAsync)
	registerSimple[RoleRequest](TypeRoleRequest)
	registerSimple[RoleReply](TypeRoleReply)
	registerSimple[TableMod](TypeTableMod)
}

// ConfigFlags is ofp_config_flags: how the switch treats IP fragments.
type ConfigFlags uint16

// IP fragment handling (the OFPC_FRAG_MASK values).
const (
	FragNormal ConfigFlags = 0
	FragDrop   ConfigFlags = 1
	FragReasm  ConfigFlags = 2
)

// SwitchConfig is ofp_switch_config, shared by GET_CONFIG_REPLY and
// SET_CONFIG.
type SwitchConfig struct {
	Flags ConfigFlags
	// MissSendLen is how many bytes of a packet a table-miss packet-in
	// carries; MaxLenNoBuffer sends it whole.
	MissSendLen uint16
}

func (c *SwitchConfig) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(c.Flags))
	return binary.BigEndian.AppendUint16(b, c.MissSendLen), nil
}

func (c *SwitchConfig) decode(b []byte, what string) error {
	r := newReader(b, what)
	c.Flags, c.MissSendLen = ConfigFlags(r.u16()), r.u16()
	return r.done()
}

// GetConfigRequest asks for the switch configuration.
type GetConfigRequest struct{}

func (*GetConfigRequest) Type() MsgType                       { return TypeGetConfigRequest }
func (*GetConfigRequest) appendBody(b []byte) ([]byte, error) { return b, nil }
func (*GetConfigRequest) decodeBody(b []byte) error {
	return newReader(b, "get config request").done()
}

// GetConfigReply carries the switch configuration.
type GetConfigReply struct{ SwitchConfig }

func (*GetConfigReply) Type() MsgType               { return TypeGetConfigReply }
func (m *GetConfigReply) decodeBody(b []byte) error { return m.decode(b, "get config reply") }

// SetConfig sets the switch configuration; the switch does not answer.
type SetConfig struct{ SwitchConfig }

func (*SetConfig) Type() MsgType               { return TypeSetConfig }
func (m *SetConfig) decodeBody(b []byte) error { return m.decode(b, "set config") }

// AsyncConfig is ofp_async_config: which asynchronous messages the switch
// sends on this connection. Index 0 applies while the controller's role is
// master or equal, index 1 while it is slave; each mask has bit 1<<reason set
// for every reason to report.
type AsyncConfig struct {
	PacketInMask    [2]uint32
	PortStatusMask  [2]uint32
	FlowRemovedMask [2]uint32
}

func (c *AsyncConfig) appendBody(b []byte) ([]byte, error) {
	for _, m := range [...][2]uint32{c.PacketInMask, c.PortStatusMask, c.FlowRemovedMask} {
		b = binary.BigEndian.AppendUint32(b, m[0])
		b = binary.BigEndian.AppendUint32(b, m[1])
	}
	return b, nil
}

func (c *AsyncConfig) decode(b []byte, what string) error {
	r := newReader(b, what)
	for _, m := range [...]*[2]uint32{&c.PacketInMask, &c.PortStatusMask, &c.FlowRemovedMask} {
		m[0], m[1] = r.u32(), r.u32()
	}
	return r.done()
}

// GetAsyncRequest asks for the asynchronous message configuration.
type GetAsyncRequest struct{}

func (*GetAsyncRequest) Type() MsgType                       { return TypeGetAsyncRequest }
func (*GetAsyncRequest) appendBody(b []byte) ([]byte, error) { return b, nil }
func (*GetAsyncRequest) decodeBody(b []byte) error {
	return newReader(b, "get async request").done()
}

// GetAsyncReply carries the asynchronous message configuration.
type GetAsyncReply struct{ AsyncConfig }

func (*GetAsyncReply) Type() MsgType               { return TypeGetAsyncReply }
func (m *GetAsyncReply) decodeBody(b []byte) error { return m.decode(b, "get async reply") }

// SetAsync sets the asynchronous message configuration.
type SetAsync struct{ AsyncConfig }

func (*SetAsync) Type() MsgType               { return TypeSetAsync }
func (m *SetAsync) decodeBody(b []byte) error { return m.decode(b, "set async") }

// ControllerRole is ofp_controller_role.
type ControllerRole uint32

// Controller roles.
const (
	RoleNoChange ControllerRole = 0
	RoleEqual    ControllerRole = 1
	RoleMaster   ControllerRole = 2
	RoleSlave    ControllerRole = 3
)

// RoleConfig is ofp_role_request, the body of ROLE_REQUEST and ROLE_REPLY.
// GenerationID orders master elections so that a stale master's request is
// refused.
type RoleConfig struct {
	Role         ControllerRole
	GenerationID uint64
}

func (m *RoleConfig) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, uint32(m.Role))
	b = append(b, 0, 0, 0, 0)
	return binary.BigEndian.AppendUint64(b, m.GenerationID), nil
}

func (m *RoleConfig) decode(b []byte, what string) error {
	r := newReader(b, what)
	m.Role = ControllerRole(r.u32())
	r.zeros(4)
	m.GenerationID = r.u64()
	return r.done()
}

// RoleRequest asks the switch to change (or report) this connection's role.
type RoleRequest struct{ RoleConfig }

func (*RoleRequest) Type() MsgType               { return TypeRoleRequest }
func (m *RoleRequest) decodeBody(b []byte) error { return m.decode(b, "role request") }

// RoleReply answers a RoleRequest with the role now in force.
type RoleReply struct{ RoleConfig }

func (*RoleReply) Type() MsgType               { return TypeRoleReply }
func (m *RoleReply) decodeBody(b []byte) error { return m.decode(b, "role reply") }

// TableAll (OFPTT_ALL) names every table in TABLE_MOD, flow deletion and
// flow statistics requests.
const TableAll uint8 = 0xff

// TableMod is OFPT_TABLE_MOD. OpenFlow 1.3 deprecates every config bit (the
// table-miss bits of 1.1 and 1.2), so Config is carried as a plain value.
type TableMod struct {
	TableID uint8
	Config  uint32
}

func (*TableMod) Type() MsgType { return TypeTableMod }

func (m *TableMod) appendBody(b []byte) ([]byte, error) {
	b = append(b, m.TableID, 0, 0, 0)
	return binary.BigEndian.AppendUint32(b, m.Config), nil
}

func (m *TableMod) decodeBody(b []byte) error {
	r := newReader(b, "table mod")
	m.TableID = r.u8()
	r.zeros(3)
	m.Config = r.u32()
	return r.done()
}

// TableFeatures is ofp_table_features. The properties (instruction, action,
// match and set-field capabilities, next tables...) are kept as TLVs: the
// controller needs none of them decoded, and keeping them whole lets a
// reply round-trip exactly.
type TableFeatures struct {
	TableID       uint8
	Name          string
	MetadataMatch uint64
	MetadataWrite uint64
	Config        uint32
	MaxEntries    uint32
	Properties    []TableFeatureProp
}

// TableFeatureProp is one ofp_table_feature_prop: its type (OFPTFPT_*) and
// content, without the 4-byte header and the padding to 8 bytes.
type TableFeatureProp struct {
	Type uint16
	Data []byte
}

const (
	tableFeaturesLen = 64
	tableNameLen     = 32 // OFP_MAX_TABLE_NAME_LEN
)

func appendTableFeatures(b []byte, ts []TableFeatures) ([]byte, error) {
	for i := range ts {
		t := &ts[i]
		start := len(b)
		b = append(b, 0, 0, t.TableID, 0, 0, 0, 0, 0)
		var err error
		if b, err = appendFixedString(b, t.Name, tableNameLen); err != nil {
			return b, fmt.Errorf("table %d name: %w", t.TableID, err)
		}
		b = binary.BigEndian.AppendUint64(b, t.MetadataMatch)
		b = binary.BigEndian.AppendUint64(b, t.MetadataWrite)
		b = binary.BigEndian.AppendUint32(b, t.Config)
		b = binary.BigEndian.AppendUint32(b, t.MaxEntries)
		for _, p := range t.Properties {
			n := 4 + len(p.Data)
			if n > 0xffff {
				return b, fmt.Errorf("table %d property %d: %d bytes overflow its length", t.TableID, p.Type, n)
			}
			b = binary.BigEndian.AppendUint16(b, p.Type)
			b = binary.BigEndian.AppendUint16(b, uint16(n))
			b = append(b, p.Data...)
			b = appendZeros(b, pad8(n))
		}
		if b, err = putEntryLen(b, start, 0); err != nil {
			return b, fmt.Errorf("table %d features: %w", t.TableID, err)
		}
	}
	return b, nil
}

func decodeTableFeatures(b []byte) ([]TableFeatures, error) {
	var ts []TableFeatures
	err := lengthEntries(b, 0, tableFeaturesLen, "table features", func(e []byte) error {
		var t TableFeatures
		r := newReader(e, "table features")
		r.skip(2)
		t.TableID = r.u8()
		r.zeros(5)
		t.Name = r.fixedString(tableNameLen)
		t.MetadataMatch, t.MetadataWrite, t.Config, t.MaxEntries = r.u64(), r.u64(), r.u32(), r.u32()
		for r.remaining() > 0 && r.err == nil {
			typ, n := r.u16(), int(r.u16())
			if r.err == nil && n < 4 {
				return malformed("table %d property %d: length %d", t.TableID, typ, n)
			}
			p := TableFeatureProp{Type: typ, Data: r.copyBytes(n - 4)}
			r.zeros(pad8(n))
			t.Properties = append(t.Properties, p)
		}
		ts = append(ts, t)
		return r.err
	})
	return ts, err
}

// TableFeaturesRequest with no tables asks for the features of every
// table; with tables, it asks the switch to reconfigure its pipeline.
type TableFeaturesRequest struct{ Tables []TableFeatures }

func (*TableFeaturesRequest) MultipartType() MultipartType { return MultipartTableFeatures }
func (*TableFeaturesRequest) multipartRequest()            {}

func (m *TableFeaturesRequest) appendMultipart(b []byte) ([]byte, error) {
	return appendTableFeatures(b, m.Tables)
}

func (m *TableFeaturesRequest) decodeMultipart(b []byte) (err error) {
	m.Tables, err = decodeTableFeatures(b)
	return err
}

// TableFeaturesReply lists TableFeatures.
type TableFeaturesReply struct{ Tables []TableFeatures }

func (*TableFeaturesReply) MultipartType() MultipartType { return MultipartTableFeatures }
func (*TableFeaturesReply) multipartReply()              {}

func (m *TableFeaturesReply) appendMultipart(b []byte) ([]byte, error) {
	return appendTableFeatures(b, m.Tables)
}

func (m *TableFeaturesReply) decodeMultipart(b []byte) (err error) {
	m.Tables, err = decodeTableFeatures(b)
	return err
}

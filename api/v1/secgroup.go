package v1

// Rule directions (Rule.Direction).
const (
	DirIngress = "ingress" // new connections to the group's ports
	DirEgress  = "egress"  // new connections from the group's ports
)

// ProtoAny is the protocol of a rule that matches every IPv4 packet; the
// others are the trace's ProtoTCP, ProtoUDP and ProtoICMP.
const ProtoAny = "any"

// Limits of security groups (docs/DESIGN.md §8.1).
const (
	MaxRules      = 1000 // rules of one group
	MaxPortGroups = 16   // groups one port lists
)

// SecurityGroupSpec is the body of PUT /v1/security-groups/{name}.
type SecurityGroupSpec struct {
	// Rules are required: [] is a group that allows nothing, which makes
	// its ports deny every new connection to them.
	Rules []Rule `json:"rules"`
}

// Rule is one allow rule of a security group.
type Rule struct {
	Direction string `json:"direction"`          // DirIngress or DirEgress
	Protocol  string `json:"protocol,omitempty"` // ProtoTCP, ProtoUDP, ProtoICMP or ProtoAny (default)
	// Ports is "N" or "N-M" (1-65535, N ≤ M), tcp and udp only; absent,
	// every port.
	Ports string `json:"ports,omitempty"`
	// Remote (an IPv4 CIDR) or RemoteGroup (a group's name: the addresses
	// of the ports that list it, on every host) is the peer a rule allows;
	// at most one of them, neither is any peer.
	Remote      string `json:"remote,omitempty"`
	RemoteGroup string `json:"remote_group,omitempty"`
}

// SecurityGroup is a security group as the API shows it.
type SecurityGroup struct {
	Name string `json:"name"`
	ID   int    `json:"id"`
	// Rules in canonical form: the protocol always given, remote masked.
	Rules []Rule `json:"rules"`
	// Ports are the ports, of every host, that list the group, sorted.
	Ports []string `json:"ports"`
	// ReferencedBy are the other groups whose rules name this one in
	// remote_group, sorted.
	ReferencedBy []string `json:"referenced_by"`
	// Hits are the rules' counters on this host, when asked for
	// (?stats=true).
	Hits []RuleHits `json:"hits,omitempty"`
}

// RuleHits counts what one rule of a group allowed on this host.
type RuleHits struct {
	Rule    int    `json:"rule"` // the rule's index in Rules, from 0
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// SecurityGroupList is GET /v1/security-groups.
type SecurityGroupList struct {
	SecurityGroups []SecurityGroup `json:"security_groups"`
}

// Package dhcp answers DHCPv4 for ports (docs/DESIGN.md §8.4): from one
// Ethernet frame a port sent and that port's Binding — its IPAM record and
// its network's options — it builds the whole Ethernet frame of the answer,
// or none, and a Verdict to count.
//
// It is pure and stateless: the IPAM record is the lease database, so a
// RELEASE or a DECLINE changes nothing and a restarted daemon answers as
// before. The backends do the I/O — the OVS backend from packet-ins, the
// Linux backend from a packet socket per port — and find the Binding by
// the port the frame came in on, never by the MAC the frame claims.
//
// DHCP messages are decoded and encoded with github.com/insomniacslk/dhcp;
// the Ethernet, IPv4 and UDP around them are this package's (frame.go).
package dhcp

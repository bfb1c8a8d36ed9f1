package v1

import (
	"net/netip"
	"strings"
	"testing"
)

func TestQueryCheck(t *testing.T) {
	for _, tc := range []struct {
		q    Query
		want string // "" for valid
	}{
		{Query{From: "web1", To: addr("10.0.0.1")}, ""},
		{Query{From: "web1", To: addr("10.0.0.1"), Proto: "tcp", DPort: 443}, ""},
		{Query{From: "Web1", To: addr("10.0.0.1")}, "from"},
		{Query{From: "web1"}, "to must be an IPv4 address"},
		{Query{From: "web1", To: addr("fd00::1")}, "to must be an IPv4 address"},
		{Query{From: "web1", To: addr("10.0.0.1"), Proto: "sctp"}, "proto must be"},
		{Query{From: "web1", To: addr("10.0.0.1"), Proto: "tcp"}, "needs a destination port"},
		{Query{From: "web1", To: addr("10.0.0.1"), DPort: 80}, "dport applies to tcp and udp only"},
		{Query{From: "web1", To: addr("10.0.0.1"), SrcMAC: "01:00:00:00:00:01"}, "src_mac"},
		{Query{From: "web1", To: addr("10.0.0.1"), Src: addr("fd00::2")}, "src must be an IPv4"},
		{Query{FromAddress: addr("198.51.100.2"), To: addr("198.51.100.50"), Proto: "tcp", DPort: 80}, ""},
		{Query{From: "web1", FromAddress: addr("198.51.100.2"), To: addr("10.0.0.1")}, "not both"},
		{Query{FromAddress: addr("fd00::2"), To: addr("10.0.0.1")}, "from_address must be an IPv4"},
		{Query{FromAddress: addr("198.51.100.2"), To: addr("10.0.0.1"), Src: addr("10.0.0.9")}, "src and src_mac"},
		{Query{To: addr("10.0.0.1")}, "from"},
	} {
		q := tc.q
		err := q.Check()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: error %v, want %q", tc.q, err, tc.want)
		}
		if err == nil && q.Proto == "" {
			t.Errorf("%+v: no default protocol", tc.q)
		}
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

func mustPool(t testing.TB, cidr, gw string) *Pool {
	t.Helper()
	p, err := New(netip.MustParsePrefix(cidr), netip.MustParseAddr(gw))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllocateSkipsGatewayAndWraps(t *testing.T) {
	p := mustPool(t, "10.0.0.0/29", "10.0.0.1") // hosts .1-.6, gateway .1
	var got []string
	for i := range 5 {
		a, err := p.Allocate(fmt.Sprint("p", i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	if fmt.Sprint(got) != "[10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6]" {
		t.Fatalf("allocated %v", got)
	}
	if _, err := p.Allocate("x"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want ErrExhausted, got %v", err)
	}
	p.Release(netip.MustParseAddr("10.0.0.3"), "y") // not y's: kept
	if p.Free() != 0 {
		t.Fatalf("released another owner's address: free %d", p.Free())
	}
	p.Release(netip.MustParseAddr("10.0.0.3"), "p1")
	p.Release(netip.MustParseAddr("10.0.0.3"), "p1") // twice is harmless
	if a, err := p.Allocate("y"); err != nil || a.String() != "10.0.0.3" {
		t.Fatalf("after release: %v %v", a, err)
	}
	if p.Free() != 0 {
		t.Fatalf("free %d", p.Free())
	}
}

func TestAllocateDoesNotReuseAtOnce(t *testing.T) {
	p := mustPool(t, "10.0.0.0/24", "10.0.0.1")
	a, _ := p.Allocate("a")
	p.Release(a, "a")
	if b, _ := p.Allocate("b"); b == a {
		t.Fatalf("released %s handed out again at once", a)
	}
}

func TestReserve(t *testing.T) {
	p := mustPool(t, "10.0.0.0/24", "10.0.0.254")
	cases := []struct {
		addr, owner string
		want        error
	}{
		{"10.0.0.10", "a", nil},
		{"10.0.0.10", "a", nil}, // idempotent
		{"10.0.0.10", "b", ErrInUse},
		{"10.0.0.254", "b", ErrOutOfRange}, // gateway
		{"10.0.0.0", "b", ErrOutOfRange},
		{"10.0.0.255", "b", ErrOutOfRange},
		{"10.0.1.1", "b", ErrOutOfRange},
		{"10.0.0.1", "b", nil},
	}
	for _, c := range cases {
		if err := p.Reserve(netip.MustParseAddr(c.addr), c.owner); !errors.Is(err, c.want) {
			t.Errorf("Reserve(%s, %s) = %v, want %v", c.addr, c.owner, err, c.want)
		}
	}
	if err := p.Reserve(netip.MustParseAddr("10.0.0.10"), "a"); err != nil {
		t.Errorf("10.0.0.10 is not a's: %v", err)
	}
	if p.Free() != 253-2 {
		t.Errorf("free %d", p.Free())
	}
	// Allocation steps around reserved addresses.
	for range 300 {
		a, err := p.Allocate("z")
		if err != nil {
			break
		}
		if a.String() == "10.0.0.10" || a.String() == "10.0.0.254" {
			t.Fatalf("allocated %s", a)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, cidr := range []string{"10.0.0.0/31", "10.0.0.1/24", "fd00::/64"} {
		if _, err := New(netip.MustParsePrefix(cidr), netip.Addr{}); err == nil {
			t.Errorf("New(%s) accepted", cidr)
		}
	}
}

// FuzzPool drives a small pool with a random sequence of operations and checks
// that no address is ever held twice and Free always counts right.
func FuzzPool(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0x81, 0x42})
	f.Fuzz(func(t *testing.T, ops []byte) {
		p := mustPool(t, "10.0.0.0/28", "10.0.0.1") // 14 hosts, 13 free
		held := map[netip.Addr]string{}             // by owner
		for i, op := range ops {
			addr := netip.AddrFrom4([4]byte{10, 0, 0, op & 0x0f})
			switch op >> 6 {
			case 0:
				a, err := p.Allocate(fmt.Sprint(i))
				if err == nil {
					if held[a] != "" || a == netip.MustParseAddr("10.0.0.1") {
						t.Fatalf("allocated %s twice or the gateway", a)
					}
					held[a] = fmt.Sprint(i)
				} else if len(held) != 13 {
					t.Fatalf("exhausted with %d held", len(held))
				}
			case 1:
				if err := p.Reserve(addr, fmt.Sprint(i)); err == nil {
					if held[addr] != "" {
						t.Fatalf("reserved held %s", addr)
					}
					held[addr] = fmt.Sprint(i)
				}
			default:
				p.Release(addr, "someone else") // not the owner: kept
				p.Release(addr, held[addr])
				delete(held, addr)
			}
			if p.Free() != 13-len(held) {
				t.Fatalf("free %d with %d held", p.Free(), len(held))
			}
		}
	})
}

func TestStartAt(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.0.0/29") // hosts .1-.6, gateway .1
	for _, tc := range []struct {
		seed uint64
		want string
	}{
		{0, "10.0.0.2"}, // .1 is the gateway
		{3, "10.0.0.4"},
		{5, "10.0.0.6"},
		{6, "10.0.0.2"},       // wraps
		{1 << 40, "10.0.0.5"}, // 2^40 mod 6 = 4
	} {
		p, err := New(subnet, netip.MustParseAddr("10.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		p.StartAt(tc.seed)
		got, err := p.Allocate("x")
		if err != nil || got.String() != tc.want {
			t.Errorf("StartAt(%d): first allocation %v, %v; want %s", tc.seed, got, err, tc.want)
		}
	}
}

package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

func fip(name, addr, port string) model.FloatingIP {
	return model.FloatingIP{Name: name, Address: netip.MustParseAddr(addr), Port: port}
}

// fwd is a forward of port: "tcp/8080" or "udp/192.0.2.9:53" on targets 80.
func fwd(name, hostPort, port string) model.PortForward {
	f := model.PortForward{Name: name, Proto: model.ProtoTCP, TargetPort: 80, Port: port}
	proto, rest, _ := strings.Cut(hostPort, "/")
	if proto == "udp" {
		f.Proto = model.ProtoUDP
	}
	if ap, err := netip.ParseAddrPort(rest); err == nil {
		f.HostIP, f.HostPort = ap.Addr(), ap.Port()
	} else {
		var n uint16
		fmt.Sscan(rest, &n)
		f.HostPort = n
	}
	return f
}

func putFIP(f model.FloatingIP) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return errOf(s.PutFloatingIP(ctx, f)) }
}

func deleteFIP(name string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return errOf(s.DeleteFloatingIP(ctx, name)) }
}

func putFwd(f model.PortForward) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return errOf(s.PutPortForward(ctx, f)) }
}

func deleteFwd(name string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return errOf(s.DeletePortForward(ctx, name)) }
}

// natLoaded checks the stored floating IPs and forwards: "pub=203.0.113.5>a"
// and "web=tcp/8080>a:80".
func natLoaded(fips, fwds string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error {
		st, err := s.Load(ctx)
		if err != nil {
			return err
		}
		got := names(st.FloatingIPs, func(f model.FloatingIP) string {
			return fmt.Sprintf("%s=%s>%s", f.Name, f.Address, f.Port)
		})
		if g := strings.Join(got, " "); g != fips {
			return fmt.Errorf("floating IPs %q, want %q", g, fips)
		}
		got = names(st.PortForwards, func(f model.PortForward) string {
			return fmt.Sprintf("%s=%s>%s:%d", f.Name, f, f.Port, f.TargetPort)
		})
		if g := strings.Join(got, " "); g != fwds {
			return fmt.Errorf("port forwards %q, want %q", g, fwds)
		}
		return nil
	}
}

// natCases are the contract of floating IPs and port forwards (testStore).
func natCases() []struct {
	name  string
	steps []step
} {
	blue, red := network("blue", "10.1.0.0/24"), network("red", "10.2.0.0/24")
	return []struct {
		name  string
		steps []step
	}{
		{"floating IPs: port, address, one per port", []step{
			{do: createNetwork(blue, 1)},
			{do: putFIP(fip("pub", "203.0.113.5", "a")), want: ErrNotFound, msg: `not found: port "a"`},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: createPort(port("b", "blue", "10.1.0.6"))},
			{do: putFIP(fip("pub", "10.1.0.9", "a")), want: ErrConflict,
				msg: `conflict: address 10.1.0.9 is in subnet 10.1.0.0/24 of network "blue"`},
			{do: putFIP(fip("pub", "203.0.113.5", "a"))},
			{do: putFIP(fip("pub", "203.0.113.5", "a"))}, // same again
			{do: putFIP(fip("pub2", "203.0.113.5", "b")), want: ErrConflict,
				msg: `conflict: address 203.0.113.5 is floating IP "pub"'s`},
			{do: putFIP(fip("pub2", "203.0.113.6", "a")), want: ErrConflict,
				msg: `conflict: port "a" has floating IP "pub"`},
			{do: putFIP(fip("pub", "203.0.113.7", "b"))}, // replaced: another address and port
			{do: putFIP(fip("pub2", "203.0.113.5", "a"))},
			{do: putFIP(fip("bad/name", "203.0.113.8", "a")), want: v1.ErrInvalid},
			{do: deleteFIP("pub2")},
			{do: deleteFIP("pub2")}, // missing: not an error
			{do: natLoaded("pub=203.0.113.7>b", "")},
		}},
		{"port forwards: overlap per host", []step{
			{do: createNetwork(blue, 1)},
			{do: putFwd(fwd("web", "tcp/8080", "a")), want: ErrNotFound, msg: `not found: port "a"`},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: createPort(port("b", "blue", "10.1.0.6"))},
			{do: createPort(withHost(port("c", "blue", "10.1.0.7"), "h2"))},
			{do: putFwd(fwd("web", "tcp/8080", "a"))},
			{do: putFwd(fwd("web", "tcp/8080", "a"))}, // same again
			{do: putFwd(fwd("web2", "tcp/8080", "b")), want: ErrConflict,
				msg: `conflict: host port tcp/8080 is forwarded by "web" (port a on h1)`},
			{do: putFwd(fwd("web2", "tcp/192.0.2.9:8080", "b")), want: ErrConflict},
			{do: putFwd(fwd("web2", "udp/8080", "b"))},                    // another protocol
			{do: putFwd(fwd("web3", "tcp/8080", "c"))},                    // another host
			{do: putFwd(fwd("web", "tcp/192.0.2.9:8080", "a"))},           // replaced: one address
			{do: putFwd(fwd("web4", "tcp/192.0.2.10:8080", "b"))},         // another address
			{do: putFwd(fwd("web5", "tcp/8080", "b")), want: ErrConflict}, // every address meets both
			{do: putFwd(fwd("in", "tcp/10.1.0.1:8080", "b")), want: ErrConflict,
				msg: `conflict: host_ip 10.1.0.1 is in subnet 10.1.0.0/24 of network "blue"`},
			{do: deleteFwd("web4")},
			{do: deleteFwd("web4")}, // missing: not an error
			{do: natLoaded("", "web2=udp/8080>b:80 web3=tcp/8080>c:80 web=tcp/192.0.2.9:8080>a:80")},
		}},
		{"floating address and host_ip exclude each other", []step{
			{do: createNetwork(blue, 1)},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: createPort(port("b", "blue", "10.1.0.6"))},
			{do: putFwd(fwd("web", "tcp/203.0.113.5:80", "a"))},
			{do: putFIP(fip("pub", "203.0.113.5", "b")), want: ErrConflict,
				msg: `conflict: address 203.0.113.5 is the host_ip of port forward "web"`},
			{do: putFIP(fip("pub", "203.0.113.6", "b"))},
			{do: putFwd(fwd("dns", "udp/203.0.113.6:53", "a")), want: ErrConflict,
				msg: `conflict: host_ip 203.0.113.6 is floating IP "pub"'s address`},
			{do: natLoaded("pub=203.0.113.6>b", "web=tcp/203.0.113.5:80>a:80")},
		}},
		{"a network may not take a NAT address", []step{
			{do: createNetwork(blue, 1)},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: putFIP(fip("pub", "10.9.0.5", "a"))},
			{do: putFwd(fwd("web", "tcp/10.8.0.5:80", "a"))},
			{do: createNetwork(network("green", "10.9.0.0/24"), 0), want: ErrConflict,
				msg: `conflict: subnet 10.9.0.0/24 holds floating IP "pub"'s address 10.9.0.5`},
			{do: createNetwork(network("green", "10.8.0.0/16"), 0), want: ErrConflict,
				msg: `conflict: subnet 10.8.0.0/16 holds port forward "web"'s host_ip 10.8.0.5`},
			{do: createNetwork(red, 2)},
			{do: loaded("blue#1 red#2", "", "a@blue/10.1.0.5/0")},
		}},
		{"a port's delete takes its NAT with it", []step{
			{do: createNetwork(blue, 1)},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: createPort(port("b", "blue", "10.1.0.6"))},
			{do: putFIP(fip("pub", "203.0.113.5", "a"))},
			{do: putFwd(fwd("web", "tcp/8080", "a"))},
			{do: putFwd(fwd("dns", "udp/53", "a"))},
			{do: putFwd(fwd("ssh", "tcp/2222", "b"))},
			{do: deletePortOf("a", "h2"), want: ErrConflict}, // refused: nothing goes
			{do: natLoaded("pub=203.0.113.5>a", "dns=udp/53>a:80 ssh=tcp/2222>b:80 web=tcp/8080>a:80")},
			{do: deletePort("a")},
			{do: natLoaded("", "ssh=tcp/2222>b:80")},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: putFwd(fwd("web", "tcp/8080", "a"))}, // the host port was freed
			{do: putFIP(fip("pub", "203.0.113.5", "a"))},
			{do: natLoaded("pub=203.0.113.5>a", "ssh=tcp/2222>b:80 web=tcp/8080>a:80")},
		}},
	}
}

package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

func network(name, subnet string) model.Network {
	p := netip.MustParsePrefix(subnet)
	return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), MTU: 1500}
}

func port(name, network, ip string) model.Port {
	return model.Port{Name: name, Network: network, Type: v1.PortVeth, Netns: "ns-" + name, Ifname: "eth0",
		IP: netip.MustParseAddr(ip), MAC: model.PortMAC(name), HostIfname: "vn-" + name, Host: "h1"}
}

func router(name string, id int, networks ...string) model.Router {
	return model.Router{Name: name, ID: id, Networks: networks}
}

// step is one call in a contract case, and what it must answer: nil, a
// sentinel (errors.Is), and when msg is set, exactly that message.
type step struct {
	do   func(context.Context, Store) error
	want error
	msg  string
}

func createNetwork(n model.Network, wantID int) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error {
		got, _, err := s.CreateNetwork(ctx, n)
		if err == nil && got.ID != wantID {
			return fmt.Errorf("network %s got id %d, want %d", n.Name, got.ID, wantID)
		}
		return err
	}
}

func updateNetwork(n model.Network) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return errOf(s.UpdateNetwork(ctx, n)) }
}

// withDNS is n with the DHCP fields a test changes in place.
func withDNS(n model.Network, id int, dhcp bool, domain string, dns ...string) model.Network {
	list, err := model.NewAddrList(dns)
	if err != nil {
		panic(err)
	}
	n.ID, n.DHCP, n.Domain, n.DNS = id, dhcp, domain, list
	return n
}

// networkIs checks a stored network's ID and DHCP fields: "#1 dhcp true
// dns 10.1.0.53,9.9.9.9 domain lab.example".
func networkIs(name, want string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error {
		st, err := s.Load(ctx)
		if err != nil {
			return err
		}
		for _, n := range st.Networks {
			if n.Name != name {
				continue
			}
			if got := fmt.Sprintf("#%d dhcp %t dns %s domain %s", n.ID, n.DHCP, n.DNS, n.Domain); got != want {
				return fmt.Errorf("network %s is %q, want %q", name, got, want)
			}
			return nil
		}
		return fmt.Errorf("no network %s", name)
	}
}

func createPort(p model.Port) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return s.CreatePort(ctx, p) }
}

func updatePort(p model.Port) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return s.UpdatePort(ctx, p) }
}

// deletePort deletes a port as host h1, whose ports port makes.
func deletePort(name string) func(context.Context, Store) error {
	return deletePortOf(name, "h1")
}

func deletePortOf(name, host string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return s.DeletePort(ctx, name, host) }
}

func withHost(p model.Port, host string) model.Port { p.Host = host; return p }
func withMAC(p model.Port, mac string) model.Port   { p.MAC = mac; return p }
func withOfport(p model.Port, n int) model.Port     { p.Ofport = n; return p }

// portIs checks a stored port's host and ofport: "h1 ofport 3".
func portIs(name, want string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error {
		st, err := s.Load(ctx)
		if err != nil {
			return err
		}
		for _, p := range st.Ports {
			if p.Name != name {
				continue
			}
			if got := fmt.Sprintf("%s ofport %d", p.Host, p.Ofport); got != want {
				return fmt.Errorf("port %s is %q, want %q", name, got, want)
			}
			return nil
		}
		return fmt.Errorf("port %s is not stored", name)
	}
}

func deleteNetwork(name string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return errOf(s.DeleteNetwork(ctx, name)) }
}

// putRouter stores r without its ID and checks the store gives it r.ID.
func putRouter(r model.Router) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error {
		want := r.ID
		r.ID = 0
		got, _, err := s.PutRouter(ctx, r)
		if err == nil && got.ID != want {
			return fmt.Errorf("router %q got id %d, want %d", r.Name, got.ID, want)
		}
		return err
	}
}

// group is a security group with one ingress tcp rule per peer: a CIDR
// (it has a "/") or a group's name.
func group(name string, peers ...string) model.SecurityGroup {
	g := model.SecurityGroup{Name: name, Rules: []model.Rule{}}
	for _, peer := range peers {
		r := model.Rule{Direction: model.Ingress, Proto: model.ProtoTCP, PortMin: 80, PortMax: 80}
		if strings.Contains(peer, "/") {
			r.Remote = netip.MustParsePrefix(peer)
		} else {
			r.RemoteGroup = peer
		}
		g.Rules = append(g.Rules, r)
	}
	return g
}

// putGroup stores g and checks the store gives it wantID and says it
// replaced was ("db#2[web]" as groupsLoaded writes it; "" for none).
func putGroup(g model.SecurityGroup, wantID int, was string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error {
		got, old, _, err := s.PutSecurityGroup(ctx, g)
		switch {
		case err != nil:
			return err
		case got.ID != wantID:
			return fmt.Errorf("security group %q got id %d, want %d", g.Name, got.ID, wantID)
		case groupText(old) != was:
			return fmt.Errorf("security group %q replaced %q, want %q", g.Name, groupText(old), was)
		}
		return nil
	}
}

// groupText is "db#2[web]": a group's name, ID and its rules' peers; ""
// for the zero group.
func groupText(g model.SecurityGroup) string {
	if g.ID == 0 {
		return ""
	}
	var peers []string
	for _, r := range g.Rules {
		peers = append(peers, cmp.Or(r.RemoteGroup, r.Remote.String()))
	}
	return fmt.Sprintf("%s#%d%v", g.Name, g.ID, peers)
}

func deleteGroup(name string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return errOf(s.DeleteSecurityGroup(ctx, name)) }
}

func withGroups(p model.Port, groups ...string) model.Port {
	p.SecurityGroups = model.GroupList(strings.Join(groups, ","))
	return p
}

// groupsLoaded checks the security groups Load returns: "db#2[web] web#1[]",
// the groups their rules name in brackets.
func groupsLoaded(want string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error {
		st, err := s.Load(ctx)
		if err != nil {
			return err
		}
		var got []string
		for _, g := range st.SecurityGroups {
			got = append(got, groupText(g))
		}
		if strings.Join(got, " ") != want {
			return fmt.Errorf("loaded groups %q, want %q", strings.Join(got, " "), want)
		}
		return nil
	}
}

func deleteRouter(name string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error { return errOf(s.DeleteRouter(ctx, name)) }
}

// loaded checks what Load returns, by name: networks with their IDs,
// routers, ports with their addresses.
func loaded(nets, routers, ports string) func(context.Context, Store) error {
	return func(ctx context.Context, s Store) error {
		st, err := s.Load(ctx)
		if err != nil {
			return err
		}
		var n, r, p []string
		for _, x := range st.Networks {
			n = append(n, fmt.Sprintf("%s#%d", x.Name, x.ID))
		}
		for _, x := range st.Routers {
			r = append(r, fmt.Sprintf("%s#%d%v", x.Name, x.ID, x.Networks))
		}
		for _, x := range st.Ports {
			p = append(p, fmt.Sprintf("%s@%s/%s/%d", x.Name, x.Network, x.IP, x.Ofport))
		}
		got := strings.Join([]string{strings.Join(n, " "), strings.Join(r, " "), strings.Join(p, " ")}, " | ")
		if want := strings.Join([]string{nets, routers, ports}, " | "); got != want {
			return fmt.Errorf("loaded\n  %s\nwant\n  %s", got, want)
		}
		return nil
	}
}

// testStore is the contract both stores keep, as a table of cases; each
// case runs on a fresh store from open.
func testStore(t *testing.T, open func(t *testing.T) Store) {
	blue, red := network("blue", "10.1.0.0/24"), network("red", "10.2.0.0/24")
	macA := model.PortMAC("a")
	cases := []struct {
		name  string
		steps []step
	}{
		{"networks: ids, duplicate, overlap, reuse", []step{
			{do: createNetwork(blue, 1)},
			{do: createNetwork(red, 2)},
			{do: createNetwork(network("blue", "10.3.0.0/24"), 0), want: ErrExists, msg: `already exists: network "blue"`},
			{do: createNetwork(network("green", "10.1.0.128/25"), 0), want: ErrConflict,
				msg: `conflict: subnet 10.1.0.128/25 overlaps 10.1.0.0/24 of network "blue"`},
			{do: createNetwork(network("green", "10.0.0.0/8"), 0), want: ErrConflict},
			{do: deleteNetwork("blue")},
			{do: deleteNetwork("blue")}, // missing: not an error
			{do: createNetwork(network("green", "10.1.0.0/16"), 1)},
			{do: createNetwork(network("blue", "10.4.0.0/24"), 3)},
			{do: loaded("blue#3 green#1 red#2", "", "")},
		}},
		{"networks: update in place", []step{
			{do: updateNetwork(withDNS(blue, 1, true, "")), want: ErrNotFound, msg: `not found: network "blue"`},
			{do: createNetwork(withDNS(blue, 0, true, ""), 1)},
			{do: createNetwork(withDNS(red, 0, true, ""), 2)},
			{do: createPort(port("a", "blue", "10.1.0.5"))}, // a port on it changes nothing
			{do: updateNetwork(withDNS(blue, 1, false, "lab.example", "10.1.0.53", "9.9.9.9"))},
			{do: networkIs("blue", "#1 dhcp false dns 10.1.0.53,9.9.9.9 domain lab.example")},
			{do: updateNetwork(withDNS(blue, 1, false, "lab.example", "10.1.0.53", "9.9.9.9"))}, // the same again
			{do: updateNetwork(withDNS(blue, 1, true, ""))},
			{do: networkIs("blue", "#1 dhcp true dns  domain ")},
			{do: updateNetwork(withDNS(network("blue", "10.1.0.0/25"), 1, true, "")), want: ErrConflict,
				msg: `conflict: network "blue" is 10.1.0.0/24 #1 (gateway 10.1.0.1, mtu 1500, masquerade false); an update changes only dhcp, dns and domain`},
			{do: updateNetwork(func() model.Network { n := withDNS(blue, 1, true, ""); n.MTU = 9000; return n }()), want: ErrConflict},
			{do: updateNetwork(func() model.Network { n := withDNS(blue, 1, true, ""); n.Masquerade = true; return n }()), want: ErrConflict},
			{do: updateNetwork(withDNS(blue, 2, true, "x.example")), want: ErrConflict}, // another ID: another network
			{do: networkIs("blue", "#1 dhcp true dns  domain ")},
			{do: networkIs("red", "#2 dhcp true dns  domain ")},
			{do: loaded("blue#1 red#2", "", "a@blue/10.1.0.5/0")},
		}},
		{"network in use", []step{
			{do: createNetwork(blue, 1)},
			{do: createNetwork(red, 2)},
			{do: createPort(port("b", "blue", "10.1.0.6"))},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: createPort(port("c", "red", "10.2.0.5"))},
			{do: putRouter(router("r1", 1, "blue", "red"))},
			{do: deleteNetwork("blue"), want: ErrConflict, msg: `conflict: network "blue" is used by ports a, b and routers r1`},
			{do: deleteRouter("r1")},
			{do: deleteNetwork("blue"), want: ErrConflict, msg: `conflict: network "blue" is used by ports a, b`},
			{do: deletePort("a")},
			{do: deletePort("b")},
			{do: putRouter(router("r1", 1, "blue", "red"))},
			{do: deleteNetwork("blue"), want: ErrConflict, msg: `conflict: network "blue" is used by routers r1`},
			{do: deleteRouter("r1")},
			{do: deleteNetwork("blue")},
			{do: loaded("red#2", "", "c@red/10.2.0.5/0")},
		}},
		{"routers", []step{
			{do: createNetwork(blue, 1)},
			{do: putRouter(router("r1", 1, "blue", "red")), want: ErrNotFound, msg: `not found: network "red"`},
			{do: createNetwork(red, 2)},
			{do: putRouter(router("r1", 1, "blue", "red"))},
			{do: putRouter(router("r1", 1, "blue", "red"))}, // same again
			{do: createNetwork(network("green", "10.3.0.0/24"), 3)},
			{do: putRouter(router("r1", 1, "blue", "green"))}, // replaced
			{do: putRouter(router("r2", 2, "blue", "red"))},
			{do: deleteRouter("r1")},
			{do: deleteRouter("r1")},                          // missing: not an error
			{do: putRouter(router("r3", 1, "red", "green"))},  // r1's id is free again
			{do: putRouter(router("r2", 2, "blue", "green"))}, // replaced: keeps its id
			{do: loaded("blue#1 green#3 red#2", "r2#2[blue green] r3#1[red green]", "")},
		}},
		{"ports: create conflicts", []step{
			{do: createPort(port("a", "blue", "10.1.0.5")), want: ErrNotFound, msg: `not found: network "blue"`},
			{do: createNetwork(blue, 1)},
			{do: createNetwork(red, 2)},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: createPort(port("a", "blue", "10.1.0.6")), want: ErrExists, msg: `already exists: port "a"`},
			{do: createPort(port("a", "red", "10.2.0.6")), want: ErrExists},
			{do: createPort(port("x", "blue", "10.1.0.5")), want: ErrConflict, msg: `conflict: address 10.1.0.5 is in use by port a`},
			{do: createPort(port("x", "red", "10.1.0.5"))}, // addresses are per network
			{do: deletePort("a")},
			{do: deletePort("a")}, // missing: not an error
			{do: createPort(port("y", "blue", "10.1.0.5"))},
			{do: loaded("blue#1 red#2", "", "x@red/10.1.0.5/0 y@blue/10.1.0.5/0")},
		}},
		{"ports: update", []step{
			{do: createNetwork(blue, 1)},
			{do: createNetwork(red, 2)},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: updatePort(func() model.Port { p := port("a", "blue", "10.1.0.5"); p.Ofport = 7; return p }())},
			{do: updatePort(port("a", "blue", "10.1.0.6")), want: ErrConflict,
				msg: `conflict: port "a" is 10.1.0.5 in network "blue"; an update cannot change them to 10.1.0.6 in "blue"`},
			{do: updatePort(port("a", "red", "10.1.0.5")), want: ErrConflict},
			{do: updatePort(model.Port{Name: "a", Network: "blue"}), want: ErrConflict},
			{do: updatePort(port("b", "blue", "10.1.0.9")), want: ErrNotFound, msg: `not found: port "b"`},
			{do: loaded("blue#1 red#2", "", "a@blue/10.1.0.5/7")},
			{do: deletePort("a")},
			{do: updatePort(port("a", "blue", "10.1.0.5")), want: ErrNotFound},
			{do: createPort(port("b", "blue", "10.1.0.5"))}, // the address was freed
			{do: loaded("blue#1 red#2", "", "b@blue/10.1.0.5/0")},
		}},
		{"ports: mac unique per network", []step{
			{do: createNetwork(blue, 1)},
			{do: createNetwork(red, 2)},
			{do: createPort(port("a", "blue", "10.1.0.5"))},
			{do: createPort(withMAC(port("x", "blue", "10.1.0.6"), macA)), want: ErrMACInUse,
				msg: "conflict: mac " + macA + " is used by port a in network blue"},
			{do: createPort(withMAC(port("x", "blue", "10.1.0.6"), macA)), want: ErrConflict},
			{do: createPort(port("y", "blue", "10.1.0.5")), want: ErrAddressInUse},
			{do: createPort(withMAC(port("x", "red", "10.2.0.6"), macA))}, // MACs are per network
			{do: updatePort(withMAC(port("a", "blue", "10.1.0.5"), "02:00:00:00:00:01")), want: ErrConflict,
				msg: `conflict: port "a" has mac ` + macA + `; an update cannot change it to 02:00:00:00:00:01`},
			// Named once, though it holds an address and a MAC.
			{do: deleteNetwork("blue"), want: ErrConflict, msg: `conflict: network "blue" is used by ports a`},
			{do: deletePort("a")},
			{do: createPort(withMAC(port("y", "blue", "10.1.0.7"), macA))}, // the MAC was freed
			{do: createPort(withMAC(port("z", "blue", "10.1.0.8"), strings.ToUpper(model.PortMAC("z")))), want: v1.ErrInvalid},
			{do: createPort(withMAC(port("z", "blue", "10.1.0.8"), "03:00:00:00:00:01")), want: v1.ErrInvalid},
			{do: createPort(withMAC(port("z", "blue", "10.1.0.8"), "")), msg: `port "z" has no mac`},
			{do: deletePort("y")},
			{do: deleteNetwork("blue")}, // nothing of y is left under blue
			{do: loaded("red#2", "", "x@red/10.2.0.6/0")},
		}},
		{"ports: only their host changes them", []step{
			{do: createNetwork(blue, 1)},
			{do: createPort(port("a", "blue", "10.1.0.5"))}, // on h1
			{do: deletePortOf("a", "h2"), want: ErrConflict, msg: `conflict: port "a" is on host "h1", not "h2"`},
			{do: updatePort(withOfport(withHost(port("a", "blue", "10.1.0.5"), "h2"), 3)), want: ErrConflict,
				msg: `conflict: port "a" is on host "h1", not "h2"`},
			{do: portIs("a", "h1 ofport 0")},
			{do: updatePort(withOfport(port("a", "blue", "10.1.0.5"), 4))},
			{do: portIs("a", "h1 ofport 4")},
			{do: deletePortOf("a", "h1")},
			{do: deletePortOf("a", "h2")}, // missing: not an error, whoever asks
			// Records without a host (stored before ports named their host)
			// are any host's; an update gives them its host.
			{do: createPort(withHost(port("b", "blue", "10.1.0.6"), ""))},
			{do: updatePort(withOfport(withHost(port("b", "blue", "10.1.0.6"), "h3"), 2))},
			{do: portIs("b", "h3 ofport 2")},
			{do: deletePortOf("b", "h2"), want: ErrConflict, msg: `conflict: port "b" is on host "h3", not "h2"`},
			{do: createPort(withHost(port("c", "blue", "10.1.0.7"), ""))},
			{do: deletePortOf("c", "h2")},
			{do: createPort(port("d", "blue", "10.1.0.7"))}, // c's address was freed
			{do: loaded("blue#1", "", "b@blue/10.1.0.6/2 d@blue/10.1.0.7/0")},
		}},
		{"security groups: ids, references", []step{
			{do: putGroup(group("db", "web"), 0, ""), want: ErrNotFound, msg: `not found: security group "web"`},
			{do: putGroup(group("web", "10.0.0.0/8", "web"), 1, "")}, // naming itself needs nothing
			{do: putGroup(group("db", "web"), 2, "")},
			{do: putGroup(group("admin"), 3, "")},
			{do: putGroup(group("db", "web", "admin"), 2, "db#2[web]")}, // replaced: keeps its id
			{do: deleteGroup("web"), want: ErrConflict, msg: `conflict: security group "web" is used by groups db`},
			{do: deleteGroup("admin"), want: ErrConflict},
			{do: putGroup(group("db", "admin"), 2, "db#2[web admin]")}, // no longer names web
			{do: deleteGroup("web")},
			{do: deleteGroup("web")},            // missing: not an error
			{do: putGroup(group("ssh"), 1, "")}, // web's id is free again
			{do: putGroup(group("bad/name"), 0, ""), want: v1.ErrInvalid},
			{do: groupsLoaded("admin#3[] db#2[admin] ssh#1[]")},
		}},
		{"security groups: ports list them", []step{
			{do: createNetwork(blue, 1)},
			{do: createPort(withGroups(port("a", "blue", "10.1.0.5"), "web")), want: ErrNotFound, msg: `not found: security group "web"`},
			{do: putGroup(group("web"), 1, "")},
			{do: putGroup(group("db", "web"), 2, "")},
			{do: createPort(withGroups(port("a", "blue", "10.1.0.5"), "db", "web"))},
			{do: createPort(withGroups(port("b", "blue", "10.1.0.6"), "web"))},
			{do: deleteGroup("web"), want: ErrConflict, msg: `conflict: security group "web" is used by ports a, b and groups db`},
			{do: updatePort(withGroups(port("a", "blue", "10.1.0.5"), "nope")), want: ErrNotFound, msg: `not found: security group "nope"`},
			{do: updatePort(withGroups(port("a", "blue", "10.1.0.5"), "db"))}, // in place: a leaves web
			{do: deletePort("b")},
			{do: deleteGroup("web"), want: ErrConflict, msg: `conflict: security group "web" is used by groups db`},
			{do: deleteGroup("db"), want: ErrConflict, msg: `conflict: security group "db" is used by ports a`},
			{do: updatePort(port("a", "blue", "10.1.0.5"))}, // no groups
			{do: deleteGroup("db")},
			{do: deleteGroup("web")},
			{do: loaded("blue#1", "", "a@blue/10.1.0.5/0")},
			{do: groupsLoaded("")},
		}},
		{"refuses what cannot be a key", []step{
			{do: createNetwork(network("a/b", "10.1.0.0/24"), 0), want: v1.ErrInvalid},
			{do: createNetwork(blue, 1)},
			{do: createPort(port("a/b", "blue", "10.1.0.5")), want: v1.ErrInvalid},
			{do: createPort(model.Port{Name: "a", Network: "blue"}), want: nil, msg: `port "a" has no address`},
			{do: loaded("blue#1", "", "")},
		}},
	}
	cases = append(cases, natCases()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			ctx := t.Context()
			for i, st := range c.steps {
				err := st.do(ctx, s)
				switch {
				case st.want == nil && st.msg == "" && err != nil:
					t.Fatalf("step %d: %v", i, err)
				case st.want != nil && !errors.Is(err, st.want):
					t.Fatalf("step %d: got %v, want %v", i, err, st.want)
				case st.msg != "" && (err == nil || err.Error() != st.msg):
					t.Fatalf("step %d: got %v, want message %q", i, err, st.msg)
				}
			}
		})
	}
}

func TestBolt(t *testing.T) {
	testStore(t, func(t *testing.T) Store {
		s, err := Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// writeBolt writes a state file as an older version did: buckets of JSON
// records (a string is written as it is).
func writeBolt(t *testing.T, path string, buckets map[string]map[string]any) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for bucket, kv := range buckets {
			b, err := tx.CreateBucket([]byte(bucket))
			if err != nil {
				return err
			}
			for k, v := range kv {
				raw, ok := v.(string)
				if !ok {
					buf, _ := json.Marshal(v)
					raw = string(buf)
				}
				if err := b.Put([]byte(k), []byte(raw)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBoltOldFile opens files of older versions — written before the ipam
// bucket, and with addresses but no MACs in it: they load as they were, and
// their ports' addresses and MACs are held. Of two old ports with one MAC,
// the first in name order holds it. A port stored before ports named their
// host is any host's.
func TestBoltOldFile(t *testing.T) {
	blue := network("blue", "10.1.0.0/24")
	blue.ID = 7
	a := withHost(port("a", "blue", "10.1.0.5"), "")
	b := withMAC(port("b", "blue", "10.1.0.6"), a.MAC)
	for _, c := range []struct {
		name string
		ipam map[string]any
	}{
		{"no ipam", nil},
		{"ipam without macs", map[string]any{"blue/10.1.0.5": "a", "blue/10.1.0.6": "b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			buckets := map[string]map[string]any{
				"networks": {"blue": blue},
				"routers":  {},
				"ports":    {"a": a, "b": b},
			}
			if c.ipam != nil {
				buckets["ipam"] = c.ipam
			}
			writeBolt(t, path, buckets)
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := t.Context()
			for i, st := range []step{
				{do: loaded("blue#7", "", "a@blue/10.1.0.5/0 b@blue/10.1.0.6/0")},
				{do: createPort(port("c", "blue", "10.1.0.6")), want: ErrConflict, msg: `conflict: address 10.1.0.6 is in use by port b`},
				{do: createPort(withMAC(port("c", "blue", "10.1.0.7"), a.MAC)), want: ErrConflict,
					msg: "conflict: mac " + a.MAC + " is used by port a in network blue"},
				{do: deleteNetwork("blue"), want: ErrConflict, msg: `conflict: network "blue" is used by ports a, b`},
				{do: createNetwork(network("red", "10.2.0.0/24"), 1)},
				{do: deletePort("b")}, // frees its address, not a's MAC
				{do: createPort(port("c", "blue", "10.1.0.6"))},
				{do: createPort(withMAC(port("d", "blue", "10.1.0.8"), a.MAC)), want: ErrMACInUse},
				{do: deletePortOf("a", "h9")}, // no host: any host's
				{do: createPort(withMAC(port("d", "blue", "10.1.0.8"), a.MAC))},
			} {
				if err := st.do(ctx, s); !errors.Is(err, st.want) || (st.msg != "" && err.Error() != st.msg) {
					t.Fatalf("step %d: got %v, want %v %q", i, err, st.want, st.msg)
				}
			}
		})
	}
}

// logCount counts the log lines of a message.
func logCount(log *testbed.SyncBuffer, msg string) int {
	return strings.Count(log.String(), "msg=\""+msg+"\"")
}

func newLog(t *testing.T) (*slog.Logger, *testbed.SyncBuffer) {
	buf := &testbed.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("store log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, within)
	return 0
}

func names[T any](items []T, name func(T) string) []string {
	var out []string
	for _, it := range items {
		out = append(out, name(it))
	}
	slices.Sort(out)
	return out
}

// errOf is the error of a write that also returns its revision.
func errOf(_ int64, err error) error { return err }

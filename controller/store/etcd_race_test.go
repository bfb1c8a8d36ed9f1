package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Writers racing on different hosts (each with a client of its own): where
// only one may win, exactly one does.

// openHosts opens n stores on one prefix, as n hosts of a cluster.
func openHosts(t *testing.T, cluster *testbed.Etcd, n int) []*Etcd {
	prefix := uniquePrefix()
	var hosts []*Etcd
	for range n {
		s, _ := openEtcd(t, cluster, prefix)
		hosts = append(hosts, s)
	}
	return hosts
}

// TestEtcdConcurrentPorts: three hosts, each with its own client, attach
// ports at once with addresses picked to collide. No address is stored
// twice, every refusal is ErrConflict, and every address tried ends up
// held by exactly one port.
func TestEtcdConcurrentPorts(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	hosts := openHosts(t, cluster, 3)
	ctx := t.Context()
	if _, _, err := hosts[0].CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	const perHost = 30
	var (
		mu      sync.Mutex
		won     = map[netip.Addr]string{}
		tried   = map[netip.Addr]bool{}
		refused int
		wg      sync.WaitGroup
	)
	start := time.Now()
	for h, s := range hosts {
		for i := range perHost {
			wg.Go(func() {
				p := port(fmt.Sprintf("p%d-%d", h, i), "blue", fmt.Sprintf("10.1.0.%d", 10+(h*7+i*3)%20))
				p.Host = fmt.Sprintf("h%d", h)
				err := s.CreatePort(ctx, p)
				mu.Lock()
				defer mu.Unlock()
				tried[p.IP] = true
				switch {
				case err == nil:
					if other, ok := won[p.IP]; ok {
						t.Errorf("%s and %s both got %s", other, p.Name, p.IP)
					}
					won[p.IP] = p.Name
				case errors.Is(err, ErrAddressInUse) && strings.Contains(err.Error(), "address "+p.IP.String()+" is in use by port p"):
					refused++
				default:
					t.Errorf("port %s: %v (want success or ErrConflict)", p.Name, err)
				}
			})
		}
	}
	wg.Wait()
	t.Logf("%d creates from 3 clients in %v: %d stored, %d refused", 3*perHost, time.Since(start), len(won), refused)
	if len(won) != len(tried) {
		t.Errorf("%d addresses tried, %d held", len(tried), len(won))
	}
	st, err := hosts[1].Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	for _, p := range st.Ports {
		if other, ok := seen[p.IP]; ok {
			t.Errorf("stored twice: %s by %s and %s", p.IP, other, p.Name)
		}
		seen[p.IP] = p.Name
		if won[p.IP] != p.Name {
			t.Errorf("stored %s for %s, but %s was told it won", p.IP, p.Name, won[p.IP])
		}
	}
	if len(st.Ports) != len(won) {
		t.Errorf("stored %d ports, %d creates succeeded", len(st.Ports), len(won))
	}
	// The addresses and the records agree: deleting every port (by its
	// host) frees all.
	for _, p := range st.Ports {
		if err := hosts[2].DeletePort(ctx, p.Name, p.Host); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hosts[0].DeleteNetwork(ctx, "blue"); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdConcurrentMACs: two hosts create ports with one MAC in one
// network at once, each with its own name and address: exactly one wins,
// the other is told which port holds the MAC.
func TestEtcdConcurrentMACs(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	hosts := openHosts(t, cluster, 2)
	ctx := t.Context()
	if _, _, err := hosts[0].CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	const rounds = 30
	winners := map[string]int{}
	for round := range rounds {
		mac := model.PortMAC(fmt.Sprintf("mac-%d", round))
		ports := make([]model.Port, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for h, s := range hosts {
			p := port(fmt.Sprintf("m%d-%d", round, h), "blue", fmt.Sprintf("10.1.0.%d", 10+2*round+h))
			ports[h] = withHost(withMAC(p, mac), fmt.Sprintf("h%d", h))
			wg.Go(func() { errs[h] = s.CreatePort(ctx, ports[h]) })
		}
		wg.Wait()
		var won, lost int
		switch {
		case errs[0] == nil && errs[1] != nil:
			won, lost = 0, 1
		case errs[1] == nil && errs[0] != nil:
			won, lost = 1, 0
		default:
			t.Fatalf("round %d: %v and %v, want exactly one to win", round, errs[0], errs[1])
		}
		winners[ports[won].Host]++
		want := fmt.Sprintf("conflict: mac %s is used by port %s in network blue", mac, ports[won].Name)
		if !errors.Is(errs[lost], ErrMACInUse) || errs[lost].Error() != want {
			t.Fatalf("round %d: loser got %v, want %q", round, errs[lost], want)
		}
	}
	t.Logf("%d rounds, wins by host: %v", rounds, winners)
	st, err := hosts[1].Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	macs := map[string]string{}
	for _, p := range st.Ports {
		if other, ok := macs[p.MAC]; ok {
			t.Errorf("mac %s stored for %s and %s", p.MAC, other, p.Name)
		}
		macs[p.MAC] = p.Name
	}
	if len(st.Ports) != rounds {
		t.Errorf("stored %d ports, want %d", len(st.Ports), rounds)
	}
}

// TestEtcdConcurrentNetworks: from three clients at once, networks whose
// subnets all overlap (exactly one wins), then networks that do not overlap
// (all win, each with its own ID).
func TestEtcdConcurrentNetworks(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	hosts := openHosts(t, cluster, 3)
	ctx := t.Context()
	for _, c := range []struct {
		name    string
		subnet  func(h, i int) string
		wantWon int
	}{
		{"overlapping", func(h, i int) string { return fmt.Sprintf("10.9.0.0/%d", 16+(h*10+i)%9) }, 1},
		{"disjoint", func(h, i int) string { return fmt.Sprintf("10.%d.0.0/16", 100+h*10+i) }, 30},
	} {
		var (
			mu  sync.Mutex
			won []model.Network
			wg  sync.WaitGroup
		)
		start := time.Now()
		for h, s := range hosts {
			for i := range 10 {
				wg.Go(func() {
					n, _, err := s.CreateNetwork(ctx, network(fmt.Sprintf("%s-%d-%d", c.name[:4], h, i), c.subnet(h, i)))
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						won = append(won, n)
					case !errors.Is(err, ErrConflict):
						t.Errorf("%s: %v (want success or ErrConflict)", c.name, err)
					}
				})
			}
		}
		wg.Wait()
		t.Logf("%s: 30 creates from 3 clients in %v, %d won", c.name, time.Since(start), len(won))
		if len(won) != c.wantWon {
			t.Errorf("%s: %d won, want %d", c.name, len(won), c.wantWon)
		}
		st, err := hosts[0].Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[int]string{}
		for _, n := range st.Networks {
			if other, ok := ids[n.ID]; ok {
				t.Errorf("networks %s and %s share id %d", other, n.Name, n.ID)
			}
			ids[n.ID] = n.Name
			for _, o := range st.Networks {
				if o.Name != n.Name && o.Subnet.Overlaps(n.Subnet) {
					t.Errorf("stored overlapping %s %s and %s %s", n.Name, n.Subnet, o.Name, o.Subnet)
				}
			}
		}
	}
}

// TestEtcdDeleteNetworkRace: a port created on one host while another
// deletes its network. Exactly one wins: the port (the delete names it), or
// the delete (the port's network is not found). Never a port without its
// network.
func TestEtcdDeleteNetworkRace(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	hosts := openHosts(t, cluster, 2)
	a, b := hosts[0], hosts[1]
	ctx := t.Context()
	outcomes := map[string]int{}
	for round := range 30 {
		if _, _, err := a.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
			t.Fatal(err)
		}
		var portErr, delErr error
		var wg sync.WaitGroup
		wg.Go(func() { portErr = a.CreatePort(ctx, port("p", "blue", "10.1.0.5")) })
		wg.Go(func() { _, delErr = b.DeleteNetwork(ctx, "blue") })
		wg.Wait()
		switch {
		case portErr == nil && errors.Is(delErr, ErrConflict) && delErr.Error() == `conflict: network "blue" is used by ports p`:
			outcomes["port won"]++
			if err := b.DeletePort(ctx, "p", "h1"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.DeleteNetwork(ctx, "blue"); err != nil {
				t.Fatal(err)
			}
		case delErr == nil && errors.Is(portErr, ErrNotFound):
			outcomes["delete won"]++
		default:
			t.Fatalf("round %d: create port: %v; delete network: %v", round, portErr, delErr)
		}
		st, err := a.Load(ctx)
		if err != nil || len(st.Networks)+len(st.Ports) != 0 {
			t.Fatalf("round %d: left %+v %v", round, st, err)
		}
	}
	t.Logf("30 rounds: %v", outcomes)
}

// TestEtcdDeletePortRace: host h1's port p is deleted twice at once — once
// by a client that then creates p again as host h2's, with the same address
// and MAC. The other delete, for h1, may delete h1's p or find it gone, but
// never deletes h2's: it is refused, naming h2. Each round ends with h2's p
// holding its address and MAC.
func TestEtcdDeletePortRace(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	cli := cluster.Client(t)
	a, _ := openEtcd(t, cluster, uniquePrefix())
	b, _ := openEtcd(t, cluster, a.cfg.Prefix)
	ctx := t.Context()
	if _, _, err := a.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for round := range 30 {
		if err := a.CreatePort(ctx, port("p", "blue", "10.1.0.5")); err != nil {
			t.Fatal(err)
		}
		var aErr, bErr error
		var wg sync.WaitGroup
		wg.Go(func() { aErr = a.DeletePort(ctx, "p", "h1") })
		wg.Go(func() {
			if bErr = b.DeletePort(ctx, "p", "h1"); bErr == nil {
				bErr = b.CreatePort(ctx, withHost(port("p", "blue", "10.1.0.5"), "h2"))
			}
		})
		wg.Wait()
		switch {
		case bErr != nil:
			t.Fatalf("round %d: delete and create again: %v", round, bErr)
		case aErr == nil:
			outcomes["deleted h1's or found it gone"]++
		case errors.Is(aErr, ErrConflict) && aErr.Error() == `conflict: port "p" is on host "h2", not "h1"`:
			outcomes["refused: h2's"]++
		default:
			t.Fatalf("round %d: delete: %v", round, aErr)
		}
		if err := portIs("p", "h2 ofport 0")(ctx, a); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		resp, err := cli.Get(ctx, a.root+ipamDir, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 2 || string(resp.Kvs[0].Value) != "p" || string(resp.Kvs[1].Value) != "p" {
			t.Fatalf("round %d: ipam holds %v, want p's address and mac", round, resp.Kvs)
		}
		if err := b.DeletePort(ctx, "p", "h2"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("30 rounds: %v", outcomes)
}

// TestEtcdDeleteGroupRace: a port listing a security group is created, and
// another group naming it is stored, on one host while another deletes the
// group. Each round exactly one wins: the holder (the delete names it), or
// the delete (the holder's group is not found). Never a port or a rule
// naming a group that is gone.
func TestEtcdDeleteGroupRace(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	hosts := openHosts(t, cluster, 2)
	a, b := hosts[0], hosts[1]
	ctx := t.Context()
	if _, _, err := a.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for round := range 30 {
		if _, _, _, err := a.PutSecurityGroup(ctx, group("web")); err != nil {
			t.Fatal(err)
		}
		var holdErr, delErr error
		var wg sync.WaitGroup
		holder, want := "port", `conflict: security group "web" is used by ports p`
		if round%2 == 0 {
			wg.Go(func() { holdErr = a.CreatePort(ctx, withGroups(port("p", "blue", "10.1.0.5"), "web")) })
		} else {
			holder, want = "group", `conflict: security group "web" is used by groups db`
			wg.Go(func() { _, _, _, holdErr = a.PutSecurityGroup(ctx, group("db", "web")) })
		}
		wg.Go(func() { _, delErr = b.DeleteSecurityGroup(ctx, "web") })
		wg.Wait()
		switch {
		case holdErr == nil && errors.Is(delErr, ErrConflict) && delErr.Error() == want:
			outcomes[holder+" won"]++
			if err := errors.Join(b.DeletePort(ctx, "p", "h1"), errOf(b.DeleteSecurityGroup(ctx, "db")), errOf(b.DeleteSecurityGroup(ctx, "web"))); err != nil {
				t.Fatal(err)
			}
		case delErr == nil && errors.Is(holdErr, ErrNotFound):
			outcomes["delete won over a "+holder]++
		default:
			t.Fatalf("round %d: create the %s: %v; delete the group: %v", round, holder, holdErr, delErr)
		}
		st, err := a.Load(ctx)
		if err != nil || len(st.SecurityGroups)+len(st.Ports) != 0 {
			t.Fatalf("round %d: left %+v %v", round, st, err)
		}
	}
	t.Logf("30 rounds: %v", outcomes)
}

// TestEtcdUpdateNetworkRace: a network's DHCP fields updated from three
// hosts at once all succeed, each losing race tried again; and an update
// whose record changes between its read and its write — another host's
// update, or its delete and create of the name with another subnet —
// reads again and decides on what it finds: it writes over the update,
// and refuses the other network rather than write the old subnet over it.
func TestEtcdUpdateNetworkRace(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	hosts := openHosts(t, cluster, 3)
	ctx := t.Context()
	blue := withDNS(network("blue", "10.1.0.0/24"), 0, true, "")
	if _, _, err := hosts[0].CreateNetwork(ctx, blue); err != nil {
		t.Fatal(err)
	}
	blue.ID = 1
	var wg sync.WaitGroup
	for h, s := range hosts {
		for i := range 10 {
			wg.Go(func() {
				if _, err := s.UpdateNetwork(ctx, withDNS(blue, 1, true, "", fmt.Sprintf("10.1.0.%d", 10+h*10+i))); err != nil {
					t.Errorf("host %d update %d: %v", h, i, err)
				}
			})
		}
	}
	wg.Wait()
	st, err := hosts[0].Load(ctx)
	if err != nil || len(st.Networks) != 1 || st.Networks[0].ID != 1 || len(st.Networks[0].DNS.Addrs()) != 1 {
		t.Fatalf("after 30 updates: %+v %v", st.Networks, err)
	}

	a, b := hosts[1], hosts[2]
	other := withDNS(network("blue", "10.1.0.0/25"), 1, true, "")
	for _, c := range []struct {
		name      string
		update    model.Network
		meanwhile func() error
		want      error
		stored    model.Network
	}{
		{"updated meanwhile", withDNS(blue, 1, true, "", "10.1.0.53"),
			func() error { return errOf(b.UpdateNetwork(ctx, withDNS(blue, 1, false, ""))) },
			nil, withDNS(blue, 1, true, "", "10.1.0.53")},
		{"made again meanwhile", withDNS(blue, 1, true, "", "10.1.0.54"), func() error {
			if _, err := b.DeleteNetwork(ctx, "blue"); err != nil {
				return err
			}
			_, _, err := b.CreateNetwork(ctx, other)
			return err
		}, ErrConflict, other},
	} {
		a.cli.KV = &beforeWrite{KV: a.cli.KV, hook: c.meanwhile}
		_, err := a.UpdateNetwork(ctx, c.update)
		a.cli.KV = a.cli.KV.(*beforeWrite).KV
		if !errors.Is(err, c.want) || c.want == nil && err != nil {
			t.Errorf("%s: update: %v, want %v", c.name, err, c.want)
		}
		if st, err := a.Load(ctx); err != nil || len(st.Networks) != 1 || st.Networks[0] != c.stored {
			t.Errorf("%s: stored %+v %v, want %+v", c.name, st.Networks, err, c.stored)
		}
	}
}

// beforeWrite runs hook, once, before the first conditional transaction
// is sent: another host's write between a read and the write that
// depends on it.
type beforeWrite struct {
	clientv3.KV
	hook func() error
	once sync.Once
}

func (k *beforeWrite) Txn(ctx context.Context) clientv3.Txn {
	return &hookedTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type hookedTxn struct {
	clientv3.Txn
	kv          *beforeWrite
	conditional bool
}

func (t *hookedTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.conditional = true
	t.Txn = t.Txn.If(cs...)
	return t
}

func (t *hookedTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *hookedTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }

func (t *hookedTxn) Commit() (*clientv3.TxnResponse, error) {
	var err error
	if t.conditional {
		t.kv.once.Do(func() { err = t.kv.hook() })
	}
	if err != nil {
		return nil, err
	}
	return t.Txn.Commit()
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// Collections under Prefix/v1/: NAME → JSON of the object; ipam holds
// NETWORK/IP and NETWORK/mac/MAC → port name (see ipamKey). The topology key
// changes with every write of a network or a router: writes that decide on
// the set of networks and routers commit only if it has not changed since
// they read it.
//
// A security group is held by what names it: refs holds GROUP/port/PORT
// and GROUP/group/GROUP2 (empty values) for every port that lists GROUP and
// every other group whose rules name it, written in the transaction that
// writes the holder; a group is deleted only while it has none. The group
// set key changes with every write of a group: a group write that decides
// on the set of groups (its ID, its references) commits only if it has not
// changed since it read it.
//
// Floating IPs and port forwards each name a port (etcd_nat.go): a port's
// delete deletes them in its transaction, and their writes and a network's
// creation, which check each other, commit only if what they read of the
// other is unchanged.
//
// Ports stored before ports held their MAC (the first cluster-mode
// version, never released) have no mac key: their MACs are not reserved
// until they are deleted and created again. Nothing fills them in (Load
// stays a read; the controller's own check against the ports it knows
// still refuses their MACs to new ports), and a delete frees only the keys
// the port holds.
const (
	networksDir = "networks/"
	routersDir  = "routers/"
	portsDir    = "ports/"
	hostsDir    = "hosts/"
	ipamDir     = "ipam/"
	groupsDir   = "securitygroups/"
	refsDir     = "sgrefs/"
	fipsDir     = "floating-ips/"
	fwdsDir     = "port-forwards/"
	topologyKey = "topology"
	groupSetKey = "securitygroupset"
)

// topologyTries bounds the optimistic retries of a network or router write
// that keeps losing to concurrent ones (OpTimeout bounds them too). 30
// clients creating networks at once needed up to 20 here.
const topologyTries = 50

// Etcd is the cluster store: networks, routers, security groups, ports and
// addresses of all hosts in etcd, hosts registered with leases. Every check and its write are
// one etcd transaction, so that no two hosts ever both get a name, subnet or
// address.
type Etcd struct {
	cli  *clientv3.Client
	cfg  EtcdConfig
	root string // Prefix + "/v1/"
	log  *slog.Logger
	// closed ends Register and Watch when the store is closed.
	closed context.Context
	close  context.CancelFunc
}

var _ Cluster = (*Etcd)(nil)

func (s *Etcd) key(dir, name string) string { return s.root + dir + name }

// Load reads everything at one revision.
func (s *Etcd) Load(ctx context.Context) (State, error) {
	var st State
	err := s.do(ctx, "load state from etcd", func(ctx context.Context) error {
		resp, err := s.cli.Txn(ctx).Then(
			s.list(networksDir), s.list(routersDir), s.list(portsDir), s.list(hostsDir), s.list(groupsDir),
			s.list(fipsDir), s.list(fwdsDir),
		).Commit()
		if err != nil {
			return err
		}
		st.Revision = resp.Header.Revision
		r := resp.Responses
		if st.Networks, err = decodeAll[model.Network](r[0]); err != nil {
			return err
		}
		if st.Routers, err = decodeAll[model.Router](r[1]); err != nil {
			return err
		}
		if st.Ports, err = decodeAll[model.Port](r[2]); err != nil {
			return err
		}
		if st.Hosts, err = decodeAll[Host](r[3]); err != nil {
			return err
		}
		if st.SecurityGroups, err = decodeAll[model.SecurityGroup](r[4]); err != nil {
			return err
		}
		if st.FloatingIPs, err = decodeAll[model.FloatingIP](r[5]); err != nil {
			return err
		}
		st.PortForwards, err = decodeAll[model.PortForward](r[6])
		return err
	})
	if err != nil {
		return State{}, err
	}
	return st, nil
}

func (s *Etcd) list(dir string) clientv3.Op {
	return clientv3.OpGet(s.root+dir, clientv3.WithPrefix())
}

func decodeAll[T any](r *etcdserverpb.ResponseOp) ([]T, error) {
	var out []T
	for _, kv := range r.GetResponseRange().Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// topology is what a network or router write decides on, read at one
// revision.
type topology struct {
	rev      int64 // of the topology key: 0 before the first write
	read     int64 // the store's revision it was read at
	networks []model.Network
	routers  []model.Router
	fips     []model.FloatingIP
	fwds     []model.PortForward
	ports    []string // holding addresses in the network being deleted
}

// writeTopology reads the networks and routers (and for a network being
// deleted, the holders of its addresses), lets plan decide what to write,
// and writes it if the topology key is unchanged and the extra comparisons
// hold. When not, the same transaction has read the state anew and plan
// decides again: one round trip per try. It returns the revision of its
// write; 0 when plan wrote nothing.
func (s *Etcd) writeTopology(ctx context.Context, what, network string,
	plan func(t topology, again bool) ([]clientv3.Op, []clientv3.Cmp, error)) (rev int64, err error) {
	topo := s.root + topologyKey
	reads := []clientv3.Op{clientv3.OpGet(topo), s.list(networksDir), s.list(routersDir), s.list(fipsDir), s.list(fwdsDir)}
	if network != "" {
		reads = append(reads, s.list(ipamDir+network+"/"))
	}
	err = s.retry(ctx, what, func(ctx context.Context, again bool) error {
		resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
		if err != nil {
			return err
		}
		for try := 1; ; try++ {
			t, err := decodeTopology(resp.Responses)
			if err != nil {
				return err
			}
			t.read = resp.Header.Revision
			writes, cmps, err := plan(t, again)
			if err != nil || len(writes) == 0 {
				return err
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(topo), "=", t.rev))
			writes = append(writes, clientv3.OpPut(topo, ""))
			resp, err = s.cli.Txn(ctx).If(cmps...).Then(writes...).Else(reads...).Commit()
			if err != nil || resp.Succeeded {
				rev = committed(resp, err)
				return err
			}
			if err := lost(ctx, try); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// committed is the revision a write transaction committed at: 0 when it
// failed or was refused.
func committed(resp *clientv3.TxnResponse, err error) int64 {
	if err != nil || !resp.Succeeded {
		return 0
	}
	return resp.Header.Revision
}

// lost pauses an optimistic write whose try number try lost to concurrent
// writes before it tries again, or gives up after topologyTries.
func lost(ctx context.Context, try int) error {
	if try == topologyTries {
		return fmt.Errorf("%w: gave up after %d tries against concurrent changes", ErrUnavailable, try)
	}
	select {
	case <-time.After(rand.N(time.Duration(min(try, 20)) * 5 * time.Millisecond)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func decodeTopology(r []*etcdserverpb.ResponseOp) (t topology, err error) {
	if kvs := r[0].GetResponseRange().Kvs; len(kvs) > 0 {
		t.rev = kvs[0].ModRevision
	}
	if t.networks, err = decodeAll[model.Network](r[1]); err != nil {
		return t, err
	}
	if t.routers, err = decodeAll[model.Router](r[2]); err != nil {
		return t, err
	}
	if t.fips, err = decodeAll[model.FloatingIP](r[3]); err != nil {
		return t, err
	}
	if t.fwds, err = decodeAll[model.PortForward](r[4]); err != nil {
		return t, err
	}
	if len(r) > 5 {
		for _, kv := range r[5].GetResponseRange().Kvs {
			t.ports = append(t.ports, string(kv.Value))
		}
	}
	return t, nil
}

// CreateNetwork stores a new network with the lowest free ID.
func (s *Etcd) CreateNetwork(ctx context.Context, n model.Network) (model.Network, int64, error) {
	planned := n
	rev, err := s.writeTopology(ctx, fmt.Sprintf("create network %q", n.Name), "",
		func(t topology, again bool) ([]clientv3.Op, []clientv3.Cmp, error) {
			if again {
				// The last attempt may have been applied: if so, it is done.
				for _, o := range t.networks {
					if o.Name == n.Name && o.SameSpec(n) {
						planned = o
						return nil, nil, nil
					}
				}
			}
			var err error
			if planned, err = planNetwork(t.networks, n); err != nil {
				return nil, nil, err
			}
			if err := subnetFree(planned, t.fips, t.fwds); err != nil {
				return nil, nil, err
			}
			val, err := json.Marshal(planned)
			// A floating IP or forward is written without touching the
			// topology: it is their prefixes that must be unchanged.
			return []clientv3.Op{clientv3.OpPut(s.key(networksDir, n.Name), string(val))}, s.unchangedSince(t.read, fipsDir, fwdsDir), err
		})
	if err != nil {
		return n, 0, err
	}
	return planned, rev, nil
}

// DeleteNetwork removes a network that no port or router uses. Routers are
// covered by the topology key; ports by the comparison that no address of
// the network is held, since a port is created without touching the
// topology.
func (s *Etcd) DeleteNetwork(ctx context.Context, name string) (int64, error) {
	return s.writeTopology(ctx, fmt.Sprintf("delete network %q", name), name,
		func(t topology, _ bool) ([]clientv3.Op, []clientv3.Cmp, error) {
			if !hasNetwork(t.networks, name) {
				return nil, nil, nil
			}
			if err := networkUnused(name, t.ports, routersOf(t.routers, name)); err != nil {
				return nil, nil, err
			}
			// An empty range compares as one key with all revisions 0.
			noAddresses := clientv3.Compare(clientv3.CreateRevision(s.key(ipamDir, name+"/")), "=", 0).WithPrefix()
			return []clientv3.Op{clientv3.OpDelete(s.key(networksDir, name))}, []clientv3.Cmp{noAddresses}, nil
		})
}

// UpdateNetwork replaces a network whose mutable fields alone changed, if
// its record is still the one it checked (its ModRevision): a delete and
// create of the name by another host meanwhile is checked anew. The
// topology key stays as it is: no other write decides on a network's
// mutable fields.
func (s *Etcd) UpdateNetwork(ctx context.Context, n model.Network) (rev int64, err error) {
	val, err := json.Marshal(n)
	if err != nil {
		return 0, fmt.Errorf("update network %q: %w", n.Name, err)
	}
	key := s.key(networksDir, n.Name)
	err = s.do(ctx, fmt.Sprintf("update network %q", n.Name), func(ctx context.Context) error {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(key)).Commit()
		if err != nil {
			return err
		}
		for try := 1; ; try++ {
			kvs := resp.Responses[0].GetResponseRange().Kvs
			if len(kvs) == 0 {
				return errNoNetwork(n.Name)
			}
			var old model.Network
			if err := json.Unmarshal(kvs[0].Value, &old); err != nil {
				return fmt.Errorf("decode %s: %w", kvs[0].Key, err)
			}
			// Equal: nothing to write, or the last attempt was applied.
			if err := checkNetworkUpdate(old, n); err != nil || old == n {
				return err
			}
			unchanged := clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)
			resp, err = s.cli.Txn(ctx).If(unchanged).Then(clientv3.OpPut(key, string(val))).Else(clientv3.OpGet(key)).Commit()
			if err != nil || resp.Succeeded {
				rev = committed(resp, err)
				return err
			}
			if err := lost(ctx, try); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// PutRouter creates or replaces a router whose networks all exist.
func (s *Etcd) PutRouter(ctx context.Context, r model.Router) (model.Router, int64, error) {
	var stored model.Router
	rev, err := s.writeTopology(ctx, fmt.Sprintf("store router %q", r.Name), "",
		func(t topology, _ bool) ([]clientv3.Op, []clientv3.Cmp, error) {
			var err error
			if stored, err = planRouter(t.networks, t.routers, r); err != nil {
				return nil, nil, err
			}
			val, err := json.Marshal(stored)
			return []clientv3.Op{clientv3.OpPut(s.key(routersDir, r.Name), string(val))}, nil, err
		})
	return stored, rev, err
}

// DeleteRouter removes a router; a missing one is not an error.
func (s *Etcd) DeleteRouter(ctx context.Context, name string) (rev int64, err error) {
	key := s.key(routersDir, name)
	err = s.do(ctx, fmt.Sprintf("delete router %q", name), func(ctx context.Context) error {
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
			Then(clientv3.OpDelete(key), clientv3.OpPut(s.root+topologyKey, "")).
			Commit()
		rev = committed(resp, err)
		return err
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// CreatePort stores a new port and takes its address and its MAC in one
// transaction: the network exists, the name, the address and the MAC are
// free.
func (s *Etcd) CreatePort(ctx context.Context, p model.Port) error {
	if err := checkNewPort(p); err != nil {
		return err
	}
	val, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("create port %q: %w", p.Name, err)
	}
	netKey, portKey := s.key(networksDir, p.Network), s.key(portsDir, p.Name)
	ipKey, hwKey := s.key(ipamDir, ipamKey(p.Network, p.IP)), s.key(ipamDir, macKey(p.Network, p.MAC))
	groups := p.SecurityGroups.Names()
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(netKey), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(portKey), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(ipKey), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(hwKey), "=", 0),
	}
	writes := []clientv3.Op{clientv3.OpPut(portKey, string(val)), clientv3.OpPut(ipKey, p.Name), clientv3.OpPut(hwKey, p.Name)}
	reads := []clientv3.Op{
		clientv3.OpGet(netKey, clientv3.WithCountOnly()),
		clientv3.OpGet(portKey),
		clientv3.OpGet(ipKey),
		clientv3.OpGet(hwKey),
	}
	cmps = append(cmps, s.groupsExist(groups)...)
	writes = append(writes, s.refOps(nil, groups, "port/"+p.Name)...)
	reads = append(reads, s.countGroups(groups)...)
	return s.retry(ctx, fmt.Sprintf("create port %q", p.Name), func(ctx context.Context, again bool) error {
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(writes...).Else(reads...).Commit()
		if err != nil || resp.Succeeded {
			return err
		}
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return errNoNetwork(p.Network)
		}
		if stored := resp.Responses[1].GetResponseRange().Kvs; len(stored) > 0 {
			if again && string(stored[0].Value) == string(val) {
				return nil // the last attempt was applied after all
			}
			return errPortExists(p.Name)
		}
		if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
			return errAddressInUse(p.IP, string(kvs[0].Value))
		}
		if kvs := resp.Responses[3].GetResponseRange().Kvs; len(kvs) > 0 {
			return errMACInUse(p.MAC, string(kvs[0].Value), p.Network)
		}
		if err := missingGroup(groups, resp.Responses[4:]); err != nil {
			return err
		}
		return errors.New("transaction refused, but every condition holds")
	})
}

// changePort reads the port's record and, if decide accepts it and the
// security groups exist, writes ops in one transaction that commits only
// if the record has not changed since it was read (its ModRevision) and
// the groups still exist. When not, it reads and decides again. A missing
// record is decided with ok false. With withNAT, decide also gets the
// floating IPs and forwards read with the record, and the transaction
// commits only if they are unchanged too.
func (s *Etcd) changePort(ctx context.Context, what, name string, groups []string, withNAT bool,
	decide func(old model.Port, ok bool, nat natState) ([]clientv3.Op, error)) error {
	portKey := s.key(portsDir, name)
	reads := append([]clientv3.Op{clientv3.OpGet(portKey)}, s.countGroups(groups)...)
	if withNAT {
		reads = append(reads, s.list(fipsDir), s.list(fwdsDir))
	}
	return s.do(ctx, what, func(ctx context.Context) error {
		for try := 1; ; try++ {
			resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
			if err != nil {
				return err
			}
			var old model.Port
			var rev int64
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				kv := kvs[0]
				if err := json.Unmarshal(kv.Value, &old); err != nil {
					return fmt.Errorf("decode %s: %w", kv.Key, err)
				}
				rev = kv.ModRevision
			}
			var nat natState
			cmps := append(s.groupsExist(groups), clientv3.Compare(clientv3.ModRevision(portKey), "=", rev))
			if withNAT {
				r := resp.Responses[1+len(groups):]
				if nat.fips, err = decodeAll[model.FloatingIP](r[0]); err != nil {
					return err
				}
				if nat.fwds, err = decodeAll[model.PortForward](r[1]); err != nil {
					return err
				}
				cmps = append(cmps, s.unchangedSince(resp.Header.Revision, fipsDir, fwdsDir)...)
			}
			ops, err := decide(old, rev != 0, nat)
			if err != nil || len(ops) == 0 {
				return err
			}
			if err := missingGroup(groups, resp.Responses[1:]); err != nil {
				return err
			}
			txn, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
			switch {
			case err != nil:
				return err
			case txn.Succeeded:
				return nil
			case try == topologyTries:
				return fmt.Errorf("%w: gave up after %d tries against concurrent changes", ErrUnavailable, try)
			}
		}
	})
}

// UpdatePort replaces a port of p.Host that keeps its network, address and
// MAC, if the record is still the one it checked and its security groups
// exist.
func (s *Etcd) UpdatePort(ctx context.Context, p model.Port) error {
	val, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("update port %q: %w", p.Name, err)
	}
	groups := p.SecurityGroups.Names()
	return s.changePort(ctx, fmt.Sprintf("update port %q", p.Name), p.Name, groups, false,
		func(old model.Port, ok bool, _ natState) ([]clientv3.Op, error) {
			if !ok {
				return nil, errNoPort(p.Name)
			}
			if err := checkPortUpdate(old, p); err != nil {
				return nil, err
			}
			ops := []clientv3.Op{clientv3.OpPut(s.key(portsDir, p.Name), string(val))}
			return append(ops, s.refOps(old.SecurityGroups.Names(), groups, "port/"+p.Name)...), nil
		})
}

// DeletePort removes a port of host, its floating IPs and forwards, and
// frees its address and its MAC in one transaction, if the record and the
// floating IPs and forwards are still those it checked; a missing port is
// not an error.
func (s *Etcd) DeletePort(ctx context.Context, name, host string) error {
	return s.changePort(ctx, fmt.Sprintf("delete port %q", name), name, nil, true,
		func(old model.Port, ok bool, nat natState) ([]clientv3.Op, error) {
			if !ok {
				return nil, nil
			}
			if err := checkOwner(old, host); err != nil {
				return nil, err
			}
			ops := []clientv3.Op{
				clientv3.OpDelete(s.key(portsDir, name)),
				s.release(ipamKey(old.Network, old.IP), name),
				s.release(macKey(old.Network, old.MAC), name),
			}
			fips, fwds := natOf(name, nat.fips, nat.fwds)
			for _, f := range fips {
				ops = append(ops, clientv3.OpDelete(s.key(fipsDir, f)))
			}
			for _, f := range fwds {
				ops = append(ops, clientv3.OpDelete(s.key(fwdsDir, f)))
			}
			return append(ops, s.refOps(old.SecurityGroups.Names(), nil, "port/"+name)...), nil
		})
}

// release deletes an ipam key if it is held by port, and only then: a port
// stored before MACs were held holds no mac key, and another port may hold
// its MAC now.
func (s *Etcd) release(key, port string) clientv3.Op {
	key = s.key(ipamDir, key)
	return clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", port)},
		[]clientv3.Op{clientv3.OpDelete(key)}, nil)
}

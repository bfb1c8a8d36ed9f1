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
// NETWORK/IP → port name. The topology key changes with every write of a
// network or a router: writes that decide on the set of networks and
// routers commit only if it has not changed since they read it.
const (
	networksDir = "networks/"
	routersDir  = "routers/"
	portsDir    = "ports/"
	hostsDir    = "hosts/"
	ipamDir     = "ipam/"
	topologyKey = "topology"
)

// topologyTries bounds the optimistic retries of a network or router write
// that keeps losing to concurrent ones (OpTimeout bounds them too). 30
// clients creating networks at once needed up to 20 here.
const topologyTries = 50

// Etcd is the cluster store: networks, routers, ports and addresses of all
// hosts in etcd, hosts registered with leases. Every check and its write are
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
			s.list(networksDir), s.list(routersDir), s.list(portsDir), s.list(hostsDir),
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
		st.Hosts, err = decodeAll[Host](r[3])
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
	networks []model.Network
	routers  []model.Router
	ports    []string // holding addresses in the network being deleted
}

// writeTopology reads the networks and routers (and for a network being
// deleted, the holders of its addresses), lets plan decide what to write,
// and writes it if the topology key is unchanged and the extra comparisons
// hold. When not, the same transaction has read the state anew and plan
// decides again: one round trip per try.
func (s *Etcd) writeTopology(ctx context.Context, what, network string,
	plan func(t topology, again bool) ([]clientv3.Op, []clientv3.Cmp, error)) error {
	topo := s.root + topologyKey
	reads := []clientv3.Op{clientv3.OpGet(topo), s.list(networksDir), s.list(routersDir)}
	if network != "" {
		reads = append(reads, s.list(ipamDir+network+"/"))
	}
	return s.retry(ctx, what, func(ctx context.Context, again bool) error {
		resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
		if err != nil {
			return err
		}
		for try := 1; ; try++ {
			t, err := decodeTopology(resp.Responses)
			if err != nil {
				return err
			}
			writes, cmps, err := plan(t, again)
			if err != nil || len(writes) == 0 {
				return err
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(topo), "=", t.rev))
			writes = append(writes, clientv3.OpPut(topo, ""))
			resp, err = s.cli.Txn(ctx).If(cmps...).Then(writes...).Else(reads...).Commit()
			switch {
			case err != nil:
				return err
			case resp.Succeeded:
				return nil
			case try == topologyTries:
				return fmt.Errorf("%w: gave up after %d tries against concurrent changes", ErrUnavailable, try)
			}
			select {
			case <-time.After(rand.N(time.Duration(min(try, 20)) * 5 * time.Millisecond)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
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
	if len(r) > 3 {
		for _, kv := range r[3].GetResponseRange().Kvs {
			t.ports = append(t.ports, string(kv.Value))
		}
	}
	return t, nil
}

// CreateNetwork stores a new network with the lowest free ID.
func (s *Etcd) CreateNetwork(ctx context.Context, n model.Network) (model.Network, error) {
	planned := n
	err := s.writeTopology(ctx, fmt.Sprintf("create network %q", n.Name), "",
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
			val, err := json.Marshal(planned)
			return []clientv3.Op{clientv3.OpPut(s.key(networksDir, n.Name), string(val))}, nil, err
		})
	if err != nil {
		return n, err
	}
	return planned, nil
}

// DeleteNetwork removes a network that no port or router uses. Routers are
// covered by the topology key; ports by the comparison that no address of
// the network is held, since a port is created without touching the
// topology.
func (s *Etcd) DeleteNetwork(ctx context.Context, name string) error {
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

// PutRouter creates or replaces a router whose networks all exist.
func (s *Etcd) PutRouter(ctx context.Context, r model.Router) (model.Router, error) {
	var stored model.Router
	err := s.writeTopology(ctx, fmt.Sprintf("store router %q", r.Name), "",
		func(t topology, _ bool) ([]clientv3.Op, []clientv3.Cmp, error) {
			var err error
			if stored, err = planRouter(t.networks, t.routers, r); err != nil {
				return nil, nil, err
			}
			val, err := json.Marshal(stored)
			return []clientv3.Op{clientv3.OpPut(s.key(routersDir, r.Name), string(val))}, nil, err
		})
	return stored, err
}

// DeleteRouter removes a router; a missing one is not an error.
func (s *Etcd) DeleteRouter(ctx context.Context, name string) error {
	key := s.key(routersDir, name)
	return s.do(ctx, fmt.Sprintf("delete router %q", name), func(ctx context.Context) error {
		_, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
			Then(clientv3.OpDelete(key), clientv3.OpPut(s.root+topologyKey, "")).
			Commit()
		return err
	})
}

// CreatePort stores a new port and takes its address in one transaction:
// the network exists, the name and the address are free.
func (s *Etcd) CreatePort(ctx context.Context, p model.Port) error {
	if err := checkNewPort(p); err != nil {
		return err
	}
	val, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("create port %q: %w", p.Name, err)
	}
	netKey, portKey, ipKey := s.key(networksDir, p.Network), s.key(portsDir, p.Name), s.key(ipamDir, ipamKey(p.Network, p.IP))
	return s.retry(ctx, fmt.Sprintf("create port %q", p.Name), func(ctx context.Context, again bool) error {
		resp, err := s.cli.Txn(ctx).
			If(
				clientv3.Compare(clientv3.CreateRevision(netKey), ">", 0),
				clientv3.Compare(clientv3.CreateRevision(portKey), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(ipKey), "=", 0),
			).
			Then(clientv3.OpPut(portKey, string(val)), clientv3.OpPut(ipKey, p.Name)).
			Else(
				clientv3.OpGet(netKey, clientv3.WithCountOnly()),
				clientv3.OpGet(portKey),
				clientv3.OpGet(ipKey),
			).
			Commit()
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
		return errors.New("transaction refused, but every condition holds")
	})
}

// UpdatePort replaces a port that keeps its network and address: it commits
// only while that address is held by this port, which means the port exists
// with that network and address.
func (s *Etcd) UpdatePort(ctx context.Context, p model.Port) error {
	val, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("update port %q: %w", p.Name, err)
	}
	portKey := s.key(portsDir, p.Name)
	return s.do(ctx, fmt.Sprintf("update port %q", p.Name), func(ctx context.Context) error {
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(s.key(ipamDir, ipamKey(p.Network, p.IP))), "=", p.Name)).
			Then(clientv3.OpPut(portKey, string(val))).
			Else(clientv3.OpGet(portKey)).
			Commit()
		if err != nil || resp.Succeeded {
			return err
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return errNoPort(p.Name)
		}
		var old model.Port
		if err := json.Unmarshal(kvs[0].Value, &old); err != nil {
			return fmt.Errorf("decode %s: %w", kvs[0].Key, err)
		}
		if err := checkPortUpdate(old, p); err != nil {
			return err
		}
		return fmt.Errorf("address %s of port %q has no record in %s", p.IP, p.Name, s.root+ipamDir)
	})
}

// DeletePort removes a port and frees its address in one transaction; a
// missing port is not an error.
func (s *Etcd) DeletePort(ctx context.Context, name string) error {
	portKey := s.key(portsDir, name)
	return s.do(ctx, fmt.Sprintf("delete port %q", name), func(ctx context.Context) error {
		for try := 1; ; try++ {
			resp, err := s.cli.Get(ctx, portKey)
			if err != nil || len(resp.Kvs) == 0 {
				return err
			}
			kv := resp.Kvs[0]
			var old model.Port
			if err := json.Unmarshal(kv.Value, &old); err != nil {
				return fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			txn, err := s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(portKey), "=", kv.ModRevision)).
				Then(clientv3.OpDelete(portKey), clientv3.OpDelete(s.key(ipamDir, ipamKey(old.Network, old.IP)))).
				Commit()
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

package controller

import (
	"context"
	"fmt"

	"github.com/ovs-vnet/ovs-vnet/controller/ipam"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// cache is the desired state as the controller holds it.
type cache struct {
	networks map[string]model.Network
	routers  map[string]model.Router
	ports    map[string]model.Port // this host's
	pools    map[string]*ipam.Pool // by network name; also hold remote ports' addresses
	// remote are the other hosts' ports, hosts the live hosts (cluster only).
	remote map[string]model.Port
	hosts  map[string]store.Host
	// groups are the security groups, the cluster's like networks.
	groups map[string]model.SecurityGroup
	// fips and fwds are the floating IPs and port forwards of every
	// host's ports (nat.go).
	fips map[string]model.FloatingIP
	fwds map[string]model.PortForward
	// written are the revisions of this host's own writes the watch has
	// not caught up with, by object (cluster.go, stale).
	written map[object]int64
	// seed is where the pools start looking for free addresses (cluster
	// only, see allocationSeed).
	seed uint64
}

func newCache(seed uint64) cache {
	return cache{
		networks: map[string]model.Network{}, routers: map[string]model.Router{}, ports: map[string]model.Port{},
		pools: map[string]*ipam.Pool{}, remote: map[string]model.Port{}, hosts: map[string]store.Host{},
		groups: map[string]model.SecurityGroup{}, fips: map[string]model.FloatingIP{}, fwds: map[string]model.PortForward{},
		written: map[object]int64{}, seed: seed,
	}
}

// load reads the desired state from the store and, once it is whole, makes
// it the cache; it returns the store's revision. The store is read without
// the locks, so that reads are served meanwhile; the caller takes them to
// swap.
func (c *Controller) load(ctx context.Context) (cache, int64, error) {
	s, err := c.store.Load(ctx)
	if err != nil {
		return cache{}, 0, fmt.Errorf("read the desired state: %w", err)
	}
	fresh := newCache(c.seed)
	// Routers and ports refer to networks, ports and groups to groups, so
	// those come first; a dangling reference means the store was changed
	// behind our back, and starting on it would hide that.
	for _, n := range s.Networks {
		if err := fresh.addNetwork(n); err != nil {
			return cache{}, 0, fmt.Errorf("load network %s: %w", n.Name, err)
		}
	}
	for _, g := range s.SecurityGroups {
		fresh.groups[g.Name] = g
	}
	for _, g := range s.SecurityGroups {
		if err := fresh.groupsExist(g.References()); err != nil {
			return cache{}, 0, fmt.Errorf("load security group %s: %w", g.Name, err)
		}
	}
	for _, r := range s.Routers {
		if err := fresh.networksExist(r.Networks); err != nil {
			return cache{}, 0, fmt.Errorf("load router %s: %w", r.Name, err)
		}
		fresh.routers[r.Name] = r
	}
	for _, p := range s.Ports {
		pool, ok := fresh.pools[p.Network]
		if !ok {
			return cache{}, 0, fmt.Errorf("load port %s: network %q is not in the store", p.Name, p.Network)
		}
		if err := pool.Reserve(p.IP, p.Name); err != nil {
			return cache{}, 0, fmt.Errorf("load port %s: %w", p.Name, err)
		}
		if err := fresh.groupsExist(p.SecurityGroups.Names()); err != nil {
			return cache{}, 0, fmt.Errorf("load port %s: %w", p.Name, err)
		}
		if c.isLocal(p) {
			fresh.ports[p.Name] = p
		} else {
			fresh.remote[p.Name] = p
		}
	}
	if err := fresh.loadNAT(s); err != nil {
		return cache{}, 0, err
	}
	for _, h := range s.Hosts {
		fresh.hosts[h.Name] = h
	}
	return fresh, s.Revision, nil
}

// isLocal tells this host's ports from the others'. A single host owns every
// port, also those stored before ports named their host.
func (c *Controller) isLocal(p model.Port) bool {
	return c.cluster == nil || p.Host == c.host
}

func (c *cache) addNetwork(n model.Network) error {
	pool, err := ipam.New(n.Subnet, n.Gateway)
	if err != nil {
		return err
	}
	pool.StartAt(c.seed)
	c.networks[n.Name] = n
	c.pools[n.Name] = pool
	return nil
}

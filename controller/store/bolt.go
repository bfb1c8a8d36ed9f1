package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ovs-vnet/ovs-vnet/model"
)

var (
	networksBucket = []byte("networks")
	routersBucket  = []byte("routers")
	portsBucket    = []byte("ports")
	// ipamBucket holds NETWORK/IP and NETWORK/mac/MAC → port name for every
	// port: the address and MAC checks are lookups. Files written before it
	// existed, or before it held MACs, get what they miss on Open.
	ipamBucket = []byte("ipam")
	// groupsBucket holds the security groups; ports name theirs
	// (model.Port.SecurityGroups), groups' rules each other.
	groupsBucket = []byte("security_groups")
	// fipsBucket and fwdsBucket hold the floating IPs and port forwards;
	// each names a port (bolt_nat.go).
	fipsBucket = []byte("floating_ips")
	fwdsBucket = []byte("port_forwards")
)

// Bolt is the single-host store: a bbolt file with one bucket per kind of
// object, keyed by name, JSON values. Every write checks and writes in one
// bbolt transaction.
type Bolt struct {
	db *bolt.DB
}

var _ Store = (*Bolt)(nil)

// Open opens or creates the database at path. Another process holding the file
// (a second daemon on the same state dir) makes it fail after a second rather
// than wait forever. A damaged file is refused with ErrDamaged before it is
// written to or read from (see checkFile).
func Open(path string) (_ *Bolt, err error) {
	defer func() {
		// bbolt reads its freelist on open, trusting that page too.
		if r := recover(); r != nil {
			err = damaged(path, fmt.Errorf("%v", r))
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	var pathErr *fs.PathError
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout) || errors.As(err, &pathErr):
		// Held by another process, or not a file we may open: the file
		// itself may be sound.
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	default:
		// What bbolt says of the file's contents (bad meta pages, a
		// checksum, a version, a size too small for its own header).
		return nil, damaged(path, err)
	}
	if err := checkFile(db); err != nil {
		db.Close()
		return nil, damaged(path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{networksBucket, routersBucket, portsBucket, ipamBucket, groupsBucket, fipsBucket, fwdsBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return fillIPAM(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise state database %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// ErrDamaged means the state database is not a sound bbolt file.
var ErrDamaged = errors.New("is damaged")

func damaged(path string, err error) error {
	return fmt.Errorf("state database %s %w: %v; restore it from a backup or move it away (the dataplane is left as it is)", path, ErrDamaged, err)
}

// checkFile runs bbolt's consistency check over the whole file. bbolt
// trusts its pages: a damaged one makes a transaction fail an assertion (a
// panic) or read garbage, so the daemon looks before it uses the file. The
// check reports a panic of its own as an error; bbolt prints those as
// "panic: ...", which a clear refusal does not need.
func checkFile(db *bolt.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	var problems []string
	err = db.View(func(tx *bolt.Tx) error {
		// The channel must be drained: the check's goroutine sends every
		// problem it finds.
		for e := range tx.Check() {
			if len(problems) < 3 {
				problems = append(problems, strings.TrimPrefix(e.Error(), "panic: "))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// fillIPAM makes every port hold its address and its MAC in the ipam bucket
// where no port does: all of them in a file written before the bucket, the
// MACs in one written before MACs were held. Should two ports of an old file
// share one, the first in name order holds it. In a file that has them all,
// it only reads.
func fillIPAM(tx *bolt.Tx) error {
	ipam := tx.Bucket(ipamBucket)
	ports, err := all[model.Port](tx, portsBucket)
	if err != nil {
		return err
	}
	for _, p := range ports {
		keys := []string{ipamKey(p.Network, p.IP)}
		if p.MAC != "" {
			keys = append(keys, macKey(p.Network, p.MAC))
		}
		for _, key := range keys {
			if ipam.Get([]byte(key)) != nil {
				continue
			}
			if err := ipam.Put([]byte(key), []byte(p.Name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close releases the database file.
func (s *Bolt) Close() error { return s.db.Close() }

// Load returns every network, router, port, security group, floating IP
// and port forward, each in name order.
func (s *Bolt) Load(ctx context.Context) (State, error) {
	var st State
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("load state: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		if st.Networks, err = all[model.Network](tx, networksBucket); err != nil {
			return err
		}
		if st.Routers, err = all[model.Router](tx, routersBucket); err != nil {
			return err
		}
		if st.Ports, err = all[model.Port](tx, portsBucket); err != nil {
			return err
		}
		if st.SecurityGroups, err = all[model.SecurityGroup](tx, groupsBucket); err != nil {
			return err
		}
		if st.FloatingIPs, err = all[model.FloatingIP](tx, fipsBucket); err != nil {
			return err
		}
		st.PortForwards, err = all[model.PortForward](tx, fwdsBucket)
		return err
	})
	if err != nil {
		return State{}, fmt.Errorf("load state: %w", err)
	}
	return st, nil
}

// CreateNetwork stores a new network with the lowest free ID.
func (s *Bolt) CreateNetwork(ctx context.Context, n model.Network) (model.Network, int64, error) {
	err := s.update(ctx, fmt.Sprintf("create network %q", n.Name), func(tx *bolt.Tx) error {
		nets, err := all[model.Network](tx, networksBucket)
		if err != nil {
			return err
		}
		if n, err = planNetwork(nets, n); err != nil {
			return err
		}
		st, err := boltNAT(tx)
		if err != nil {
			return err
		}
		if err := subnetFree(n, st.fips, st.fwds); err != nil {
			return err
		}
		return put(tx, networksBucket, n.Name, n)
	})
	return n, 0, err
}

// DeleteNetwork removes a network that no port or router uses.
func (s *Bolt) DeleteNetwork(ctx context.Context, name string) (int64, error) {
	return 0, s.update(ctx, fmt.Sprintf("delete network %q", name), func(tx *bolt.Tx) error {
		nets := tx.Bucket(networksBucket)
		if nets.Get([]byte(name)) == nil {
			return nil
		}
		var ports []string
		prefix := []byte(name + "/")
		c := tx.Bucket(ipamBucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			ports = append(ports, string(v))
		}
		routers, err := all[model.Router](tx, routersBucket)
		if err != nil {
			return err
		}
		if err := networkUnused(name, ports, routersOf(routers, name)); err != nil {
			return err
		}
		return nets.Delete([]byte(name))
	})
}

// UpdateNetwork replaces a network whose mutable fields alone changed.
func (s *Bolt) UpdateNetwork(ctx context.Context, n model.Network) (int64, error) {
	return 0, s.update(ctx, fmt.Sprintf("update network %q", n.Name), func(tx *bolt.Tx) error {
		old, ok, err := get[model.Network](tx, networksBucket, n.Name)
		switch {
		case err != nil:
			return err
		case !ok:
			return errNoNetwork(n.Name)
		}
		if err := checkNetworkUpdate(old, n); err != nil {
			return err
		}
		return put(tx, networksBucket, n.Name, n)
	})
}

// PutRouter creates or replaces a router whose networks all exist.
func (s *Bolt) PutRouter(ctx context.Context, r model.Router) (model.Router, int64, error) {
	err := s.update(ctx, fmt.Sprintf("store router %q", r.Name), func(tx *bolt.Tx) error {
		nets, err := all[model.Network](tx, networksBucket)
		if err != nil {
			return err
		}
		routers, err := all[model.Router](tx, routersBucket)
		if err != nil {
			return err
		}
		if r, err = planRouter(nets, routers, r); err != nil {
			return err
		}
		return put(tx, routersBucket, r.Name, r)
	})
	return r, 0, err
}

// DeleteRouter removes a router; a missing one is not an error.
func (s *Bolt) DeleteRouter(ctx context.Context, name string) (int64, error) {
	return 0, s.update(ctx, fmt.Sprintf("delete router %q", name), func(tx *bolt.Tx) error {
		return tx.Bucket(routersBucket).Delete([]byte(name))
	})
}

// CreatePort stores a new port and takes its address and its MAC in its
// network.
func (s *Bolt) CreatePort(ctx context.Context, p model.Port) error {
	if err := checkNewPort(p); err != nil {
		return err
	}
	return s.update(ctx, fmt.Sprintf("create port %q", p.Name), func(tx *bolt.Tx) error {
		if tx.Bucket(networksBucket).Get([]byte(p.Network)) == nil {
			return errNoNetwork(p.Network)
		}
		if tx.Bucket(portsBucket).Get([]byte(p.Name)) != nil {
			return errPortExists(p.Name)
		}
		if err := boltGroupsExist(tx, p.SecurityGroups.Names()); err != nil {
			return err
		}
		ipam := tx.Bucket(ipamBucket)
		addr, mac := []byte(ipamKey(p.Network, p.IP)), []byte(macKey(p.Network, p.MAC))
		if holder := ipam.Get(addr); holder != nil {
			return errAddressInUse(p.IP, string(holder))
		}
		if holder := ipam.Get(mac); holder != nil {
			return errMACInUse(p.MAC, string(holder), p.Network)
		}
		if err := ipam.Put(addr, []byte(p.Name)); err != nil {
			return err
		}
		if err := ipam.Put(mac, []byte(p.Name)); err != nil {
			return err
		}
		return put(tx, portsBucket, p.Name, p)
	})
}

// UpdatePort replaces a port of p.Host that keeps its network, address and
// MAC.
func (s *Bolt) UpdatePort(ctx context.Context, p model.Port) error {
	return s.update(ctx, fmt.Sprintf("update port %q", p.Name), func(tx *bolt.Tx) error {
		old, ok, err := get[model.Port](tx, portsBucket, p.Name)
		switch {
		case err != nil:
			return err
		case !ok:
			return errNoPort(p.Name)
		}
		if err := checkPortUpdate(old, p); err != nil {
			return err
		}
		if err := boltGroupsExist(tx, p.SecurityGroups.Names()); err != nil {
			return err
		}
		return put(tx, portsBucket, p.Name, p)
	})
}

// DeletePort removes a port of host, its floating IPs and forwards, and
// frees its address and its MAC; a missing one is not an error, another
// host's is ErrConflict.
func (s *Bolt) DeletePort(ctx context.Context, name, host string) error {
	return s.update(ctx, fmt.Sprintf("delete port %q", name), func(tx *bolt.Tx) error {
		old, ok, err := get[model.Port](tx, portsBucket, name)
		if err != nil || !ok {
			return err
		}
		if err := checkOwner(old, host); err != nil {
			return err
		}
		ipam := tx.Bucket(ipamBucket)
		for _, key := range [][]byte{[]byte(ipamKey(old.Network, old.IP)), []byte(macKey(old.Network, old.MAC))} {
			// Only what it holds: of two ports of an old file sharing
			// one, the other holds it.
			if bytes.Equal(ipam.Get(key), []byte(name)) {
				if err := ipam.Delete(key); err != nil {
					return err
				}
			}
		}
		if err := boltDeleteNATOf(tx, name); err != nil {
			return err
		}
		return tx.Bucket(portsBucket).Delete([]byte(name))
	})
}

// boltGroupsExist names the first of the listed security groups that is
// not stored.
func boltGroupsExist(tx *bolt.Tx, names []string) error {
	for _, name := range names {
		if tx.Bucket(groupsBucket).Get([]byte(name)) == nil {
			return errNoGroup(name)
		}
	}
	return nil
}

// PutSecurityGroup creates or replaces a security group whose references
// all exist.
func (s *Bolt) PutSecurityGroup(ctx context.Context, g model.SecurityGroup) (stored, was model.SecurityGroup, rev int64, err error) {
	err = s.update(ctx, fmt.Sprintf("store security group %q", g.Name), func(tx *bolt.Tx) error {
		groups, err := all[model.SecurityGroup](tx, groupsBucket)
		if err != nil {
			return err
		}
		if stored, err = planSecurityGroup(groups, g); err != nil {
			return err
		}
		was = replaced(groups, g.Name)
		return put(tx, groupsBucket, stored.Name, stored)
	})
	if err != nil {
		return model.SecurityGroup{}, model.SecurityGroup{}, 0, err
	}
	return stored, was, 0, nil
}

// DeleteSecurityGroup removes a security group that no port lists and no
// other group's rule names; a missing one is not an error.
func (s *Bolt) DeleteSecurityGroup(ctx context.Context, name string) (int64, error) {
	return 0, s.update(ctx, fmt.Sprintf("delete security group %q", name), func(tx *bolt.Tx) error {
		if tx.Bucket(groupsBucket).Get([]byte(name)) == nil {
			return nil
		}
		ports, err := all[model.Port](tx, portsBucket)
		if err != nil {
			return err
		}
		groups, err := all[model.SecurityGroup](tx, groupsBucket)
		if err != nil {
			return err
		}
		var listing, naming []string
		for _, p := range ports {
			if p.SecurityGroups.Has(name) {
				listing = append(listing, p.Name)
			}
		}
		for _, g := range groups {
			if slices.Contains(g.References(), name) {
				naming = append(naming, g.Name)
			}
		}
		if err := groupUnused(name, listing, naming); err != nil {
			return err
		}
		return tx.Bucket(groupsBucket).Delete([]byte(name))
	})
}

// update runs f in one write transaction. A refusal (ErrExists, ErrConflict,
// ErrNotFound) speaks for itself; any other failure is wrapped with what was
// being done.
func (s *Bolt) update(ctx context.Context, what string, f func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return annotate(what, s.db.Update(f))
}

// annotate wraps err with what was being done, unless it is a refusal.
func annotate(what string, err error) error {
	if err == nil || errors.Is(err, ErrExists) || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

func put(tx *bolt.Tx, bucket []byte, key string, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return tx.Bucket(bucket).Put([]byte(key), buf)
}

func get[T any](tx *bolt.Tx, bucket []byte, key string) (item T, ok bool, err error) {
	raw := tx.Bucket(bucket).Get([]byte(key))
	if raw == nil {
		return item, false, nil
	}
	if err := json.Unmarshal(raw, &item); err != nil {
		return item, false, fmt.Errorf("record %s/%s %w: %v", bucket, key, ErrDamaged, err)
	}
	return item, true, nil
}

func all[T any](tx *bolt.Tx, bucket []byte) ([]T, error) {
	var out []T
	err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		var item T
		if err := json.Unmarshal(v, &item); err != nil {
			return fmt.Errorf("record %s/%s %w: %v", bucket, k, ErrDamaged, err)
		}
		out = append(out, item)
		return nil
	})
	return out, err
}

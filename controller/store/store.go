// Package store keeps the desired state — networks, routers and ports — in a
// bbolt file so that it survives restarts. Every write is one bbolt transaction,
// synced to disk before it returns.
package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ovs-vnet/ovs-vnet/model"
)

var (
	networksBucket = []byte("networks")
	routersBucket  = []byte("routers")
	portsBucket    = []byte("ports")
)

// Store is the desired-state database. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens or creates the database at path. Another process holding the file
// (a second daemon on the same state dir) makes it fail after a second rather
// than wait forever.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{networksBucket, routersBucket, portsBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise state database %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close releases the database file.
func (s *Store) Close() error { return s.db.Close() }

// PutNetwork creates or replaces a network.
func (s *Store) PutNetwork(n model.Network) error { return s.put(networksBucket, n.Name, n) }

// DeleteNetwork removes a network; a missing one is not an error.
func (s *Store) DeleteNetwork(name string) error { return s.delete(networksBucket, name) }

// Networks lists all networks in name order.
func (s *Store) Networks() ([]model.Network, error) { return list[model.Network](s, networksBucket) }

// PutRouter creates or replaces a router.
func (s *Store) PutRouter(r model.Router) error { return s.put(routersBucket, r.Name, r) }

// DeleteRouter removes a router; a missing one is not an error.
func (s *Store) DeleteRouter(name string) error { return s.delete(routersBucket, name) }

// Routers lists all routers in name order.
func (s *Store) Routers() ([]model.Router, error) { return list[model.Router](s, routersBucket) }

// PutPort creates or replaces a port.
func (s *Store) PutPort(p model.Port) error { return s.put(portsBucket, p.Name, p) }

// DeletePort removes a port; a missing one is not an error.
func (s *Store) DeletePort(name string) error { return s.delete(portsBucket, name) }

// Ports lists all ports in name order.
func (s *Store) Ports() ([]model.Port, error) { return list[model.Port](s, portsBucket) }

func (s *Store) put(bucket []byte, key string, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), buf) })
	if err != nil {
		return fmt.Errorf("store %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (s *Store) delete(bucket []byte, key string) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(key)) })
	if err != nil {
		return fmt.Errorf("delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

func list[T any](s *Store, bucket []byte) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var item T
			if err := json.Unmarshal(v, &item); err != nil {
				return fmt.Errorf("decode %s/%s: %w", bucket, k, err)
			}
			out = append(out, item)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bucket, err)
	}
	return out, nil
}

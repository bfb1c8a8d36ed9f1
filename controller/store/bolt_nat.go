package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// Floating IPs and port forwards of the single-host store.

// PutFloatingIP creates or replaces a floating IP whose port exists and
// whose address no other object takes.
func (s *Bolt) PutFloatingIP(ctx context.Context, f model.FloatingIP) (int64, error) {
	return 0, s.update(ctx, fmt.Sprintf("store floating IP %q", f.Name), func(tx *bolt.Tx) error {
		st, err := boltNAT(tx)
		if err != nil {
			return err
		}
		if err := checkFloatingIP(st, f); err != nil {
			return err
		}
		return put(tx, fipsBucket, f.Name, f)
	})
}

// DeleteFloatingIP removes a floating IP; a missing one is not an error.
func (s *Bolt) DeleteFloatingIP(ctx context.Context, name string) (int64, error) {
	return 0, s.update(ctx, fmt.Sprintf("delete floating IP %q", name), func(tx *bolt.Tx) error {
		return tx.Bucket(fipsBucket).Delete([]byte(name))
	})
}

// PutPortForward creates or replaces a port forward whose port exists and
// that takes no other forward's host port.
func (s *Bolt) PutPortForward(ctx context.Context, f model.PortForward) (int64, error) {
	return 0, s.update(ctx, fmt.Sprintf("store port forward %q", f.Name), func(tx *bolt.Tx) error {
		st, err := boltNAT(tx)
		if err != nil {
			return err
		}
		if err := checkPortForward(st, f); err != nil {
			return err
		}
		return put(tx, fwdsBucket, f.Name, f)
	})
}

// DeletePortForward removes a port forward; a missing one is not an error.
func (s *Bolt) DeletePortForward(ctx context.Context, name string) (int64, error) {
	return 0, s.update(ctx, fmt.Sprintf("delete port forward %q", name), func(tx *bolt.Tx) error {
		return tx.Bucket(fwdsBucket).Delete([]byte(name))
	})
}

// boltNAT reads what the checks of floating IPs and forwards decide on.
func boltNAT(tx *bolt.Tx) (st natState, err error) {
	if st.networks, err = all[model.Network](tx, networksBucket); err != nil {
		return st, err
	}
	ports, err := all[model.Port](tx, portsBucket)
	if err != nil {
		return st, err
	}
	st.ports = portsByName(ports)
	if st.fips, err = all[model.FloatingIP](tx, fipsBucket); err != nil {
		return st, err
	}
	st.fwds, err = all[model.PortForward](tx, fwdsBucket)
	return st, err
}

// boltDeleteNATOf deletes a port's floating IPs and forwards.
func boltDeleteNATOf(tx *bolt.Tx, port string) error {
	fips, err := all[model.FloatingIP](tx, fipsBucket)
	if err != nil {
		return err
	}
	fwds, err := all[model.PortForward](tx, fwdsBucket)
	if err != nil {
		return err
	}
	fipNames, fwdNames := natOf(port, fips, fwds)
	for _, name := range fipNames {
		if err := tx.Bucket(fipsBucket).Delete([]byte(name)); err != nil {
			return err
		}
	}
	for _, name := range fwdNames {
		if err := tx.Bucket(fwdsBucket).Delete([]byte(name)); err != nil {
			return err
		}
	}
	return nil
}

package ovsdb

import (
	"context"
	"fmt"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// SSLSpec is ovs-vswitchd's own TLS identity (the SSL row of Open_vSwitch):
// the PEM files it presents and checks its ssl: connections with, such as
// a bridge's connection to an ssl: controller. ovs-vswitchd reads the files.
type SSLSpec struct {
	PrivateKey, Certificate, CACert string
}

// EnsureSSL makes Open_vSwitch.ssl name the files of spec. The row is
// global to the switch, so one that someone else set (without our OwnerKey)
// is left as it is and reported with foreign true: the operator then owns
// the switch's identity. A row of ours is created or updated in one
// transaction; it returns once the cache shows the result.
func (c *Client) EnsureSSL(ctx context.Context, spec SSLSpec) (foreign bool, err error) {
	if spec.PrivateKey == "" || spec.Certificate == "" || spec.CACert == "" {
		return false, fmt.Errorf("ensure ssl: private key, certificate and CA certificate are all required")
	}
	cur, err := c.currentSSL(ctx)
	if err != nil {
		return false, fmt.Errorf("ensure ssl: %w", err)
	}
	if cur != nil && !owned(cur.ExternalIDs) {
		return true, nil
	}
	if cur != nil && sslMatches(cur, spec) {
		return false, nil
	}
	row := &vswitch.SSL{UUID: "ssl", PrivateKey: spec.PrivateKey, Certificate: spec.Certificate, CaCert: spec.CACert, ExternalIDs: ownedIDs(nil)}
	if cur != nil {
		row.UUID, row.ExternalIDs = cur.UUID, ownedIDs(cur.ExternalIDs)
		ops, err := c.lc.Where(row).Update(row, &row.PrivateKey, &row.Certificate, &row.CaCert)
		if err != nil {
			return false, fmt.Errorf("ensure ssl: build update: %w", err)
		}
		err = c.transact(ctx, ops)
		if err != nil {
			return false, fmt.Errorf("ensure ssl: %w", err)
		}
	} else {
		root, err := c.root(ctx)
		if err != nil {
			return false, fmt.Errorf("ensure ssl: %w", err)
		}
		ops, err := c.lc.Create(row)
		if err != nil {
			return false, fmt.Errorf("ensure ssl: build insert: %w", err)
		}
		ref := row.UUID
		upd := &vswitch.OpenvSwitch{UUID: root.UUID, SSL: &ref}
		set, err := c.lc.Where(upd).Update(upd, &upd.SSL)
		if err != nil {
			return false, fmt.Errorf("ensure ssl: build Open_vSwitch.ssl update: %w", err)
		}
		if err := c.transact(ctx, append(ops, set...)); err != nil {
			return false, fmt.Errorf("ensure ssl: %w", err)
		}
	}
	err = c.waitCache(ctx, "ssl in cache", func() (bool, error) {
		cur, err := c.currentSSL(ctx)
		return cur != nil && sslMatches(cur, spec), err
	})
	if err != nil {
		return false, fmt.Errorf("ensure ssl: %w", err)
	}
	return false, nil
}

// currentSSL is the row Open_vSwitch.ssl names, nil when it names none (or
// one not yet in the cache).
func (c *Client) currentSSL(ctx context.Context) (*vswitch.SSL, error) {
	root, err := c.root(ctx)
	if err != nil || root.SSL == nil {
		return nil, err
	}
	row := &vswitch.SSL{UUID: *root.SSL}
	found, err := c.get(ctx, row)
	if err != nil || !found {
		return nil, err
	}
	return row, nil
}

func sslMatches(row *vswitch.SSL, spec SSLSpec) bool {
	return row.PrivateKey == spec.PrivateKey && row.Certificate == spec.Certificate && row.CaCert == spec.CACert
}

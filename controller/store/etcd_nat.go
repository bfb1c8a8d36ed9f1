package store

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// Floating IPs and port forwards of the cluster store: keys under fipsDir
// and fwdsDir, JSON of the model's types.

// PutFloatingIP creates or replaces a floating IP whose port exists and
// whose address no other object takes: two hosts cannot both claim one
// address.
func (s *Etcd) PutFloatingIP(ctx context.Context, f model.FloatingIP) (int64, error) {
	val, err := json.Marshal(f)
	if err != nil {
		return 0, fmt.Errorf("store floating IP %q: %w", f.Name, err)
	}
	return s.writeNAT(ctx, fmt.Sprintf("store floating IP %q", f.Name), f.Port, func(st natState) error {
		return checkFloatingIP(st, f)
	}, clientv3.OpPut(s.key(fipsDir, f.Name), string(val)))
}

// DeleteFloatingIP removes a floating IP; a missing one is not an error.
func (s *Etcd) DeleteFloatingIP(ctx context.Context, name string) (int64, error) {
	return s.delete(ctx, fmt.Sprintf("delete floating IP %q", name), s.key(fipsDir, name))
}

// PutPortForward creates or replaces a port forward whose port exists and
// that overlaps no forward of a port on the same host: two requests, on
// any hosts, cannot both take tcp/8080 of one host.
func (s *Etcd) PutPortForward(ctx context.Context, f model.PortForward) (int64, error) {
	val, err := json.Marshal(f)
	if err != nil {
		return 0, fmt.Errorf("store port forward %q: %w", f.Name, err)
	}
	return s.writeNAT(ctx, fmt.Sprintf("store port forward %q", f.Name), f.Port, func(st natState) error {
		return checkPortForward(st, f)
	}, clientv3.OpPut(s.key(fwdsDir, f.Name), string(val)))
}

// DeletePortForward removes a port forward; a missing one is not an error.
func (s *Etcd) DeletePortForward(ctx context.Context, name string) (int64, error) {
	return s.delete(ctx, fmt.Sprintf("delete port forward %q", name), s.key(fwdsDir, name))
}

// delete removes key and returns the revision it did at; 0 for a missing
// key, which no event follows.
func (s *Etcd) delete(ctx context.Context, what, key string) (rev int64, err error) {
	err = s.do(ctx, what, func(ctx context.Context) error {
		resp, err := s.cli.Delete(ctx, key)
		if err == nil && resp.Deleted > 0 {
			rev = resp.Header.Revision
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// writeNAT reads the networks, ports, floating IPs and forwards at one
// revision, lets check judge, and writes put if none of what it judged on
// has changed since: the networks (CreateNetwork checks the NAT objects in
// turn), the floating IPs and forwards, and the port, whose delete takes
// its objects with it. When something has, it reads and judges again. It
// returns the revision of its write.
func (s *Etcd) writeNAT(ctx context.Context, what, port string, check func(natState) error, put clientv3.Op) (rev int64, err error) {
	portKey := s.key(portsDir, port)
	reads := []clientv3.Op{s.list(networksDir), s.list(portsDir), s.list(fipsDir), s.list(fwdsDir)}
	err = s.do(ctx, what, func(ctx context.Context) error {
		for try := 1; ; try++ {
			resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
			if err != nil {
				return err
			}
			var st natState
			r := resp.Responses
			if st.networks, err = decodeAll[model.Network](r[0]); err != nil {
				return err
			}
			ports, err := decodeAll[model.Port](r[1])
			if err != nil {
				return err
			}
			st.ports = portsByName(ports)
			if st.fips, err = decodeAll[model.FloatingIP](r[2]); err != nil {
				return err
			}
			if st.fwds, err = decodeAll[model.PortForward](r[3]); err != nil {
				return err
			}
			if err := check(st); err != nil {
				return err
			}
			var portRev int64
			for _, kv := range r[1].GetResponseRange().Kvs {
				if string(kv.Key) == portKey {
					portRev = kv.ModRevision
				}
			}
			cmps := append(s.unchangedSince(resp.Header.Revision, networksDir, fipsDir, fwdsDir),
				clientv3.Compare(clientv3.ModRevision(portKey), "=", portRev))
			txn, err := s.cli.Txn(ctx).If(cmps...).Then(put).Commit()
			if err != nil || txn.Succeeded {
				rev = committed(txn, err)
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

// unchangedSince compares that no key under the dirs was written after
// revision rev. A deleted key escapes it, which is fine for what it
// guards: a delete only frees what the checks refuse.
func (s *Etcd) unchangedSince(rev int64, dirs ...string) []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, 0, len(dirs))
	for _, dir := range dirs {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.root+dir), "<", rev+1).WithPrefix())
	}
	return cmps
}

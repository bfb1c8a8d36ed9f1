package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// The security groups of the cluster store, and the references that hold
// them (see refsDir).

// PutSecurityGroup creates or replaces a security group whose references
// all exist, and moves the references its rules hold from the old rules'
// groups to the new ones'.
func (s *Etcd) PutSecurityGroup(ctx context.Context, g model.SecurityGroup) (stored, was model.SecurityGroup, rev int64, err error) {
	rev, err = s.writeGroups(ctx, fmt.Sprintf("store security group %q", g.Name),
		func(groups []model.SecurityGroup, _ []string) ([]clientv3.Op, []clientv3.Cmp, error) {
			var err error
			if stored, err = planSecurityGroup(groups, g); err != nil {
				return nil, nil, err
			}
			val, err := json.Marshal(stored)
			if err != nil {
				return nil, nil, err
			}
			// Planned anew on every try: what it replaces is what the
			// write that succeeds saw.
			was = replaced(groups, g.Name)
			ops := append([]clientv3.Op{clientv3.OpPut(s.key(groupsDir, g.Name), string(val))},
				s.refOps(was.References(), stored.References(), "group/"+g.Name)...)
			return ops, nil, nil
		})
	if err != nil {
		return model.SecurityGroup{}, model.SecurityGroup{}, 0, err
	}
	return stored, was, rev, nil
}

// DeleteSecurityGroup removes a security group that holds no reference;
// a missing one is not an error.
func (s *Etcd) DeleteSecurityGroup(ctx context.Context, name string) (int64, error) {
	return s.writeGroups(ctx, fmt.Sprintf("delete security group %q", name),
		func(groups []model.SecurityGroup, refs []string) ([]clientv3.Op, []clientv3.Cmp, error) {
			i := slices.IndexFunc(groups, func(o model.SecurityGroup) bool { return o.Name == name })
			if i < 0 {
				return nil, nil, nil
			}
			var ports, naming []string
			for _, ref := range refs {
				kind, holder, _ := strings.Cut(ref, "/")
				if kind == "port" {
					ports = append(ports, holder)
				} else {
					naming = append(naming, holder)
				}
			}
			if err := groupUnused(name, ports, naming); err != nil {
				return nil, nil, err
			}
			// A port is created without touching the group set: it is
			// the references that must still be none.
			unheld := clientv3.Compare(clientv3.CreateRevision(s.key(refsDir, name+"/")), "=", 0).WithPrefix()
			ops := append([]clientv3.Op{clientv3.OpDelete(s.key(groupsDir, name))},
				s.refOps(groups[i].References(), nil, "group/"+name)...)
			return ops, []clientv3.Cmp{unheld}, nil
		}, name)
}

// writeGroups reads the security groups (and, for the group named in
// held, the references that hold it), lets plan decide what to write, and
// writes it if the group set key is unchanged and the extra comparisons
// hold; when not, it reads and decides again. It returns the revision of
// its write; 0 when plan wrote nothing.
func (s *Etcd) writeGroups(ctx context.Context, what string,
	plan func(groups []model.SecurityGroup, refs []string) ([]clientv3.Op, []clientv3.Cmp, error), held ...string) (rev int64, err error) {
	set := s.root + groupSetKey
	reads := []clientv3.Op{clientv3.OpGet(set), s.list(groupsDir)}
	for _, name := range held {
		reads = append(reads, clientv3.OpGet(s.key(refsDir, name+"/"), clientv3.WithPrefix(), clientv3.WithKeysOnly()))
	}
	err = s.do(ctx, what, func(ctx context.Context) error {
		for try := 1; ; try++ {
			resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
			if err != nil {
				return err
			}
			var setRev int64
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				setRev = kvs[0].ModRevision
			}
			groups, err := decodeAll[model.SecurityGroup](resp.Responses[1])
			if err != nil {
				return err
			}
			var refs []string
			for _, r := range resp.Responses[2:] {
				for _, kv := range r.GetResponseRange().Kvs {
					// GROUP/KIND/HOLDER: KIND/HOLDER.
					_, ref, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), s.root+refsDir), "/")
					refs = append(refs, ref)
				}
			}
			writes, cmps, err := plan(groups, refs)
			if err != nil || len(writes) == 0 {
				return err
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(set), "=", setRev))
			txn, err := s.cli.Txn(ctx).If(cmps...).Then(append(writes, clientv3.OpPut(set, ""))...).Commit()
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

// refOps moves holder's references (KIND/NAME) from the groups in was to
// those in is: only the difference, since a transaction may not both
// delete and put one key.
func (s *Etcd) refOps(was, is []string, holder string) []clientv3.Op {
	var ops []clientv3.Op
	for _, g := range was {
		if !slices.Contains(is, g) {
			ops = append(ops, clientv3.OpDelete(s.key(refsDir, g+"/"+holder)))
		}
	}
	for _, g := range is {
		if !slices.Contains(was, g) {
			ops = append(ops, clientv3.OpPut(s.key(refsDir, g+"/"+holder), ""))
		}
	}
	return ops
}

// groupsExist compares that each group is stored.
func (s *Etcd) groupsExist(groups []string) []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, 0, len(groups))
	for _, g := range groups {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.key(groupsDir, g)), ">", 0))
	}
	return cmps
}

// countGroups reads whether each group is stored, for missingGroup.
func (s *Etcd) countGroups(groups []string) []clientv3.Op {
	ops := make([]clientv3.Op, 0, len(groups))
	for _, g := range groups {
		ops = append(ops, clientv3.OpGet(s.key(groupsDir, g), clientv3.WithCountOnly()))
	}
	return ops
}

// missingGroup names the first group whose countGroups read found none.
func missingGroup(groups []string, counts []*etcdserverpb.ResponseOp) error {
	for i, g := range groups {
		if counts[i].GetResponseRange().Count == 0 {
			return errNoGroup(g)
		}
	}
	return nil
}

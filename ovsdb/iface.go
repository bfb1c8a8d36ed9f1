package ovsdb

import (
	"context"
	"fmt"
	"sync"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovs-vnet/ovs-vnet/ovsdb/vswitch"
)

// Interface is what ovs-vswitchd reports of an interface, as the cache shows it.
type Interface struct {
	Ofport int    // 0 while not assigned, -1 if ovs-vswitchd could not add it
	Error  string // Interface.error, "" when none
	Owned  bool   // it carries OwnerKey: ovs-vnet made it
}

// Interface reads the interface called name from the cache; found is false
// when there is none. A disconnected client fails rather than answer from a
// cache that may be old.
func (c *Client) Interface(ctx context.Context, name string) (iface Interface, found bool, err error) {
	if !c.Connected() {
		return Interface{}, false, fmt.Errorf("read interface %q: %w", name, errNotConnected)
	}
	row := &vswitch.Interface{Name: name}
	if found, err = c.get(ctx, row); err != nil || !found {
		return Interface{}, false, err
	}
	if row.Ofport != nil {
		iface.Ofport = *row.Ofport
	}
	iface.Error = derefString(row.Error)
	iface.Owned = owned(row.ExternalIDs)
	return iface, true, nil
}

// OnInterfaceChange makes f be called whenever an interface appears, goes,
// or changes what tells whether it forwards (ofport, error) — not on its
// statistics, which ovs-vswitchd rewrites every few seconds. (Its device
// going or coming back is a link event: datapath/link/watch.go.) f runs
// in the cache's update path and must not block.
func (c *Client) OnInterfaceChange(f func()) { c.ifaceHooks.add(f) }

// interfaceEvent tells the interface hooks about a cache event on table;
// old or new is nil for an insert or a delete.
func (c *Client) interfaceEvent(table string, old, new model.Model) {
	if table != vswitch.InterfaceTable {
		return
	}
	o, _ := old.(*vswitch.Interface)
	n, _ := new.(*vswitch.Interface)
	if o != nil && n != nil && derefInt(o.Ofport) == derefInt(n.Ofport) && derefString(o.Error) == derefString(n.Error) {
		return
	}
	c.ifaceHooks.call()
}

// hooks are functions called on an event, added for the client's life.
type hooks struct {
	mu sync.Mutex
	fs []func()
}

func (h *hooks) add(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fs = append(h.fs, f)
}

func (h *hooks) call() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.fs {
		f()
	}
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// WaitApplied returns once ovs-vswitchd has applied every change committed
// before the call: the handshake ovs-vsctl makes without --no-wait. It
// raises Open_vSwitch.next_cfg and waits for ovs-vswitchd to report it in
// cur_cfg, which it does after reconfiguring from a database that holds
// the raise and so everything committed before it.
func (c *Client) WaitApplied(ctx context.Context) error {
	root, err := c.root(ctx)
	if err != nil {
		return fmt.Errorf("wait for ovs-vswitchd: %w", err)
	}
	ops, err := c.lc.Where(root).Mutate(root, model.Mutation{Field: &root.NextCfg, Mutator: ovsdb.MutateOperationAdd, Value: 1})
	if err != nil {
		return fmt.Errorf("wait for ovs-vswitchd: build next_cfg mutation: %w", err)
	}
	// The value this transaction raised next_cfg to, read in it: the
	// cache may show another client's raise first.
	ops = append(ops, ovsdb.Operation{Op: ovsdb.OperationSelect, Table: vswitch.OpenvSwitchTable,
		Where:   []ovsdb.Condition{{Column: "_uuid", Function: ovsdb.ConditionEqual, Value: ovsdb.UUID{GoUUID: root.UUID}}},
		Columns: []string{"next_cfg"}})
	results, err := c.lc.Transact(ctx, ops...)
	if err == nil {
		_, err = ovsdb.CheckOperationResults(results, ops)
	}
	if err != nil {
		return fmt.Errorf("wait for ovs-vswitchd: raise next_cfg: %w", err)
	}
	if len(results) != 2 || len(results[1].Rows) != 1 {
		return fmt.Errorf("wait for ovs-vswitchd: next_cfg not read back")
	}
	next, ok := results[1].Rows[0]["next_cfg"].(float64)
	if !ok {
		return fmt.Errorf("wait for ovs-vswitchd: next_cfg is %T", results[1].Rows[0]["next_cfg"])
	}
	return c.waitCache(ctx, "ovs-vswitchd to apply the configuration", func() (bool, error) {
		root, err := c.root(ctx)
		return err == nil && float64(root.CurCfg) >= next, err
	})
}

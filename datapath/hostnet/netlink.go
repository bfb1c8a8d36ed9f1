package hostnet

import (
	"context"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
)

// NftConn is an nftables netlink connection bounded by ctx's deadline
// (ten seconds without one). Its sockets are opened on the calling thread,
// in the network namespace the caller acts on. dial, when set, replaces
// the kernel (tests).
func NftConn(ctx context.Context, dial func([]netlink.Message) ([]netlink.Message, error)) (*nftables.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	opts := []nftables.ConnOption{nftables.WithSockOptions(func(c *netlink.Conn) error { return c.SetDeadline(deadline) })}
	if dial != nil {
		opts = []nftables.ConnOption{nftables.WithTestDial(dial)}
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables netlink: %w", err)
	}
	return c, nil
}

// NftCounters reads a table's named counters, by name, in one dump.
func NftCounters(c *nftables.Conn, table *nftables.Table) (map[string]*expr.Counter, error) {
	objs, err := c.GetNamedObjects(table)
	if err != nil {
		return nil, fmt.Errorf("read counters of %s: %w", table.Name, err)
	}
	out := map[string]*expr.Counter{}
	for _, o := range objs {
		if n, ok := o.(*nftables.NamedObj); ok && n.Table.Name == table.Name {
			if counter, ok := n.Obj.(*expr.Counter); ok {
				out[n.Name] = counter
			}
		}
	}
	return out, nil
}

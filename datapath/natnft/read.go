package natnft

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
)

// Installed reads the table in the network namespace the caller acts on:
// the hash its first rule names ("" for none: no table, or not one Render
// made) and its counters' names, sorted (Render's had).
func Installed(ctx context.Context) (hash string, counters []string, err error) {
	hash, objs, err := read(ctx)
	return hash, slices.Sorted(maps.Keys(objs)), err
}

// ReadStats is one snapshot of the table's counters, by object, read
// over netlink in the network namespace the caller acts on. No table, no
// counters.
func ReadStats(ctx context.Context) (datapath.NATStats, error) {
	_, objs, err := read(ctx)
	if err != nil {
		return datapath.NATStats{}, fmt.Errorf("nat stats: %w", err)
	}
	return stats(objs), nil
}

// read reads the table over netlink. No table is an empty one.
func read(ctx context.Context) (string, map[string]*expr.Counter, error) {
	c, err := hostnet.NftConn(ctx, nil)
	if err != nil {
		return "", nil, fmt.Errorf("read table %s: %w", hostnet.NATTable, err)
	}
	table, err := c.ListTableOfFamily(hostnet.NATTable, nftables.TableFamilyIPv4)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("read table %s: %w", hostnet.NATTable, err)
	}
	var hash string
	rules, err := c.GetRules(table, &nftables.Chain{Name: chainPrerouting, Table: table})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("read chain %s of %s: %w", chainPrerouting, hostnet.NATTable, err)
	}
	if len(rules) > 0 {
		comment, _ := userdata.GetString(rules[0].UserData, userdata.TypeComment)
		hash = parseHash(comment)
	}
	objs, err := hostnet.NftCounters(c, table)
	return hash, objs, err
}

// parseHash is the hash a first rule's comment opens with, "" if none.
func parseHash(comment string) string {
	rest, ok := strings.CutPrefix(comment, hashPrefix)
	if !ok {
		return ""
	}
	hash, _, _ := strings.Cut(rest, " ")
	return hash
}

// stats sorts counters by the object they count: a nat chain sees the
// first packet of a connection only, so the translating rules' counters'
// packets are connections.
func stats(counters map[string]*expr.Counter) datapath.NATStats {
	fwds := map[string]*datapath.ForwardStats{}
	fips := map[string]*datapath.FloatingStats{}
	forward := func(name string) *datapath.ForwardStats {
		if fwds[name] == nil {
			fwds[name] = &datapath.ForwardStats{Name: name}
		}
		return fwds[name]
	}
	floating := func(name string) *datapath.FloatingStats {
		if fips[name] == nil {
			fips[name] = &datapath.FloatingStats{Name: name}
		}
		return fips[name]
	}
	for name, c := range counters {
		prefix, object, ok := strings.Cut(name, "_")
		if !ok || object == "" {
			continue
		}
		switch prefix + "_" {
		case counterConns:
			forward(object).Connections = c.Packets
		case counterPackets:
			f := forward(object)
			f.Packets, f.Bytes = c.Packets, c.Bytes
		case counterFloatIn:
			floating(object).ConnectionsIn = c.Packets
		case counterFloatOut:
			floating(object).ConnectionsOut = c.Packets
		}
	}
	var s datapath.NATStats
	for _, name := range slices.Sorted(maps.Keys(fwds)) {
		s.Forwards = append(s.Forwards, *fwds[name])
	}
	for _, name := range slices.Sorted(maps.Keys(fips)) {
		s.Floating = append(s.Floating, *fips[name])
	}
	return s
}

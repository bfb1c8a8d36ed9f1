package linux

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// What a network's overlay holds for the remote ports, in three kernel tables:
//
//	bridge fdb add MAC dev VX dst HOST self permanent      each remote port: its host
//	bridge fdb append 00:00:00:00:00:00 dev VX dst HOST    each host with ports in the network:
//	                                                       broadcast and unknown unicast go there, and only there
//	bridge fdb add MAC dev VX master static                each remote port: the bridge sends to the
//	                                                       VXLAN port at once instead of flooding its own ports
//	ip neigh replace IP lladdr MAC dev BR nud permanent    each remote port: the host routes to it without
//	                                                       ARP across the overlay
//
// On our VXLAN devices every "self" entry is ours (nolearning: the kernel
// adds none) and every static bridge entry is ours (the bridge learns only
// dynamic ones); on our bridges every permanent neighbour is ours. Those are
// what is compared with the wanted entries, and the difference applied.

// overlayEntries is one network's share of the remote ports.
type overlayEntries struct {
	fdb    map[fdbKey]bool       // VXLAN FDB (self): MAC -> host; the zero MAC floods
	static map[string]bool       // bridge FDB (master static) on the VXLAN port
	neigh  map[netip.Addr]string // permanent neighbours on the bridge: IP -> MAC
}

type fdbKey struct {
	mac string // canonical: lower case, colon separated
	dst netip.Addr
}

// floodMAC is the VXLAN FDB's default entry: where frames go whose MAC has no
// entry of its own (broadcast, multicast, unknown unicast).
const floodMAC = "00:00:00:00:00:00"

func newOverlayEntries() *overlayEntries {
	return &overlayEntries{fdb: map[fdbKey]bool{}, static: map[string]bool{}, neigh: map[netip.Addr]string{}}
}

// desiredOverlay sorts the remote ports into their networks' entries. A
// port that cannot be written is left out, with the reason, and the rest
// stand: which is the rule both backends follow (datapath.SelectRemote),
// against this host's ports (local, by network then name).
func desiredOverlay(underlay netip.Addr, local map[string]map[string]model.Port, ports []model.RemotePort) (map[string]*overlayEntries, datapath.Skips) {
	var locals []model.Port
	for _, ps := range local {
		locals = slices.AppendSeq(locals, maps.Values(ps))
	}
	kept, skipped := datapath.SelectRemote(underlay, locals, ports)
	want := map[string]*overlayEntries{}
	for _, rp := range kept {
		p := rp.Port
		e := want[p.Network]
		if e == nil {
			e = newOverlayEntries()
			want[p.Network] = e
		}
		hw, _ := net.ParseMAC(p.MAC)
		mac := hw.String()
		e.fdb[fdbKey{mac, rp.HostIP}] = true
		e.fdb[fdbKey{floodMAC, rp.HostIP}] = true
		e.static[mac] = true
		e.neigh[p.IP] = mac
	}
	return want, skipped
}

// equalOverlay reports whether a and b hold the same entries.
func equalOverlay(a, b map[string]*overlayEntries) bool {
	return maps.EqualFunc(a, b, func(x, y *overlayEntries) bool {
		return maps.Equal(x.fdb, y.fdb) && maps.Equal(x.static, y.static) && maps.Equal(x.neigh, y.neigh)
	})
}

// An overlayOp is one netlink change.
type overlayOp struct {
	del  bool
	kind opKind
	mac  string
	ip   netip.Addr // the host for fdb and flood, the port's address for neigh
}

type opKind int

const (
	opFDB    opKind = iota // VXLAN FDB entry of a remote port
	opFlood                // VXLAN FDB default entry to a host
	opStatic               // bridge FDB entry on the VXLAN port
	opNeigh                // neighbour on the bridge
)

func (o overlayOp) String() string {
	verb := map[bool]string{false: "add", true: "del"}[o.del]
	switch o.kind {
	case opFDB:
		return fmt.Sprintf("%s fdb %s dst %s", verb, o.mac, o.ip)
	case opFlood:
		return fmt.Sprintf("%s flood dst %s", verb, o.ip)
	case opStatic:
		return fmt.Sprintf("%s static %s", verb, o.mac)
	default:
		return fmt.Sprintf("%s neigh %s lladdr %s", verb, o.ip, o.mac)
	}
}

// diffOverlay lists the changes that turn have into want. Additions come
// first — where a MAC lives, then that the bridge sends it to the overlay,
// then that the host routes to it — and removals after, in the opposite
// order, so nothing points at an entry that is not there yet or any more. A
// port that moved to another host is one replace of its VXLAN FDB entry
// (the removal of the old destination then finds nothing, which is fine).
func diffOverlay(have, want *overlayEntries) []overlayOp {
	if have == nil {
		have = newOverlayEntries()
	}
	if want == nil {
		want = newOverlayEntries()
	}
	var adds, dels []overlayOp
	for _, k := range sortedFDB(want.fdb) {
		if !have.fdb[k] {
			adds = append(adds, fdbOp(false, k))
		}
	}
	for _, mac := range slices.Sorted(maps.Keys(want.static)) {
		if !have.static[mac] {
			adds = append(adds, overlayOp{kind: opStatic, mac: mac})
		}
	}
	for _, ip := range slices.SortedFunc(maps.Keys(want.neigh), netip.Addr.Compare) {
		if have.neigh[ip] != want.neigh[ip] {
			adds = append(adds, overlayOp{kind: opNeigh, ip: ip, mac: want.neigh[ip]})
		}
	}
	for _, ip := range slices.SortedFunc(maps.Keys(have.neigh), netip.Addr.Compare) {
		if _, ok := want.neigh[ip]; !ok {
			dels = append(dels, overlayOp{del: true, kind: opNeigh, ip: ip, mac: have.neigh[ip]})
		}
	}
	for _, mac := range slices.Sorted(maps.Keys(have.static)) {
		if !want.static[mac] {
			dels = append(dels, overlayOp{del: true, kind: opStatic, mac: mac})
		}
	}
	for _, k := range sortedFDB(have.fdb) {
		if !want.fdb[k] {
			dels = append(dels, fdbOp(true, k))
		}
	}
	return append(adds, dels...)
}

func fdbOp(del bool, k fdbKey) overlayOp {
	if k.mac == floodMAC {
		return overlayOp{del: del, kind: opFlood, mac: k.mac, ip: k.dst}
	}
	return overlayOp{del: del, kind: opFDB, mac: k.mac, ip: k.dst}
}

func sortedFDB(m map[fdbKey]bool) []fdbKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b fdbKey) int {
		return cmp.Or(strings.Compare(a.mac, b.mac), a.dst.Compare(b.dst))
	})
}

// overlayDevice is one network's pair of our links.
type overlayDevice struct {
	vx, br netlink.Link // br is nil while the VXLAN device is in no bridge of ours
}

// overlayHandle opens a netlink socket in the calling thread's namespace,
// bounded by ctx's deadline.
func overlayHandle(ctx context.Context) (*netlink.Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		if err := h.SetSocketTimeout(max(time.Until(d), time.Millisecond)); err != nil {
			h.Close()
			return nil, fmt.Errorf("netlink socket timeout: %w", err)
		}
	}
	return h, nil
}

// listOverlay finds our VXLAN devices, by network, with their bridges.
func listOverlay(h *netlink.Handle, prefix string) (map[string]overlayDevice, error) {
	links, err := link.List(h)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	byIndex := make(map[int]netlink.Link, len(links))
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	devs := map[string]overlayDevice{}
	for _, l := range links {
		a := l.Attrs()
		network, ok := strings.CutPrefix(a.Alias, vxlanAliasPfx)
		if !ok || a.Name != VXLANName(prefix, network) {
			continue
		}
		d := overlayDevice{vx: l}
		if br := byIndex[a.MasterIndex]; br != nil && br.Attrs().Alias == datapath.BridgeAlias(network) {
			d.br = br
		}
		devs[network] = d
	}
	return devs, nil
}

// readOverlay reads what our devices hold, in two dumps whatever the number
// of networks.
func readOverlay(h *netlink.Handle, devs map[string]overlayDevice) (map[string]*overlayEntries, error) {
	fdb, err := neighDump(h, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("dump bridge fdb: %w", err)
	}
	neigh, err := neighDump(h, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("dump neighbours: %w", err)
	}
	vxOf, brOf := map[int]string{}, map[int]string{}
	have := map[string]*overlayEntries{}
	for network, d := range devs {
		have[network] = newOverlayEntries()
		vxOf[d.vx.Attrs().Index] = network
		if d.br != nil {
			brOf[d.br.Attrs().Index] = network
		}
	}
	for _, n := range fdb {
		network, ok := vxOf[n.LinkIndex]
		if !ok || len(n.HardwareAddr) != 6 {
			continue
		}
		e, mac := have[network], n.HardwareAddr.String()
		switch {
		case n.MasterIndex != 0 || n.Flags&netlink.NTF_MASTER != 0:
			// The bridge's entries: static ones are ours; learned (dynamic)
			// and the port's own (permanent) are the kernel's.
			if n.State&netlink.NUD_NOARP != 0 && n.State&netlink.NUD_PERMANENT == 0 {
				e.static[mac] = true
			}
		case n.Flags&netlink.NTF_SELF != 0:
			if dst, ok := netip.AddrFromSlice(n.IP); ok {
				e.fdb[fdbKey{mac, dst.Unmap()}] = true
			}
		}
	}
	for _, n := range neigh {
		network, ok := brOf[n.LinkIndex]
		if !ok || n.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		if ip, ok := netip.AddrFromSlice(n.IP); ok && len(n.HardwareAddr) == 6 {
			have[network].neigh[ip.Unmap()] = n.HardwareAddr.String()
		}
	}
	return have, nil
}

// neighDump lists every neighbour (or FDB entry) of a family, repeating a
// dump that entries changed under, as link.List does for links.
func neighDump(h *netlink.Handle, family int) ([]netlink.Neigh, error) {
	for range dumpRetries - 1 {
		list, err := h.NeighList(0, family)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return list, err
		}
	}
	return h.NeighList(0, family)
}

const dumpRetries = 5

// applyOverlay carries out ops on one network's devices. It goes on past a
// failed op, so one bad entry does not keep the others from landing, and
// returns what failed. Removing what is already gone is success.
func applyOverlay(ctx context.Context, h *netlink.Handle, d overlayDevice, ops []overlayOp) error {
	var errs []error
	for _, op := range ops {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		n, err := op.neigh(d)
		if err == nil {
			switch {
			case op.del:
				err = h.NeighDel(n)
				if errors.Is(err, unix.ENOENT) {
					err = nil
				}
			case op.kind == opFlood:
				err = h.NeighAppend(n)
			default:
				err = h.NeighSet(n)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s on %s: %w", op, d.vx.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// neigh is the netlink message of the op.
func (o overlayOp) neigh(d overlayDevice) (*netlink.Neigh, error) {
	mac, err := net.ParseMAC(o.mac)
	if err != nil {
		return nil, fmt.Errorf("mac %q: %w", o.mac, err)
	}
	vx := d.vx.Attrs().Index
	switch o.kind {
	case opFDB, opFlood:
		return &netlink.Neigh{LinkIndex: vx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_NOARP | netlink.NUD_PERMANENT, HardwareAddr: mac, IP: o.ip.AsSlice()}, nil
	case opStatic:
		return &netlink.Neigh{LinkIndex: vx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_MASTER,
			State: netlink.NUD_NOARP, HardwareAddr: mac}, nil
	default:
		if d.br == nil {
			return nil, errors.New("VXLAN device is in no bridge of ours")
		}
		return &netlink.Neigh{LinkIndex: d.br.Attrs().Index, Family: unix.AF_INET,
			State: netlink.NUD_PERMANENT, IP: o.ip.AsSlice(), HardwareAddr: mac}, nil
	}
}

// Package ipam hands out the IPv4 addresses of one subnet. It keeps no state of
// its own on disk: the controller rebuilds a pool from the stored ports at start,
// so an address is allocated exactly as long as a port record holds it.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/ovs-vnet/ovs-vnet/model"
)

var (
	// ErrExhausted means the subnet has no free host address left.
	ErrExhausted = errors.New("no free address left in the subnet")
	// ErrInUse means the address is already held by another owner.
	ErrInUse = errors.New("address already in use")
	// ErrOutOfRange means the address is not a usable host address of the subnet.
	ErrOutOfRange = errors.New("address is not a usable host address of the subnet")
)

// Pool is the set of host addresses of a subnet with their owners. The gateway
// is reserved for the network itself. A Pool is not safe for concurrent use.
type Pool struct {
	subnet    netip.Prefix
	first     netip.Addr // first host address
	last      netip.Addr // last host address
	gateway   netip.Addr
	owners    map[netip.Addr]string
	next      netip.Addr // where the next search starts
	available int
}

// New returns an empty pool for subnet, an IPv4 prefix of length /8 to /30,
// with the gateway address reserved.
func New(subnet netip.Prefix, gateway netip.Addr) (*Pool, error) {
	if !subnet.Addr().Is4() || subnet.Bits() > 30 || subnet != subnet.Masked() {
		return nil, fmt.Errorf("subnet %s: need a masked IPv4 prefix of /30 or shorter", subnet)
	}
	first := subnet.Addr().Next()
	p := &Pool{
		subnet:    subnet,
		first:     first,
		last:      model.Broadcast(subnet).Prev(),
		gateway:   gateway,
		owners:    map[netip.Addr]string{},
		next:      first,
		available: 1<<(32-subnet.Bits()) - 2,
	}
	if p.usable(gateway) {
		p.available--
	}
	return p, nil
}

func (p *Pool) usable(a netip.Addr) bool {
	return a.Is4() && p.first.Compare(a) <= 0 && a.Compare(p.last) <= 0
}

// Reserve gives addr to owner. Reserving an address the owner already holds is a no-op.
func (p *Pool) Reserve(addr netip.Addr, owner string) error {
	if !p.usable(addr) || addr == p.gateway {
		return fmt.Errorf("%s in %s: %w", addr, p.subnet, ErrOutOfRange)
	}
	if o, ok := p.owners[addr]; ok {
		if o == owner {
			return nil
		}
		return fmt.Errorf("%s: %w by %q", addr, ErrInUse, o)
	}
	p.owners[addr] = owner
	p.available--
	return nil
}

// Allocate gives owner the next free address. The search goes on from the last
// allocation rather than from the start, so a just-released address is the last
// to be handed out again and stale ARP entries for it have time to expire.
func (p *Pool) Allocate(owner string) (netip.Addr, error) {
	if p.available <= 0 {
		return netip.Addr{}, fmt.Errorf("%s: %w", p.subnet, ErrExhausted)
	}
	a := p.next
	for {
		if _, taken := p.owners[a]; !taken && a != p.gateway {
			break
		}
		a = p.wrap(a.Next())
	}
	p.owners[a] = owner
	p.available--
	p.next = p.wrap(a.Next())
	return a, nil
}

// StartAt moves where the next search starts to the host address at offset
// seed (modulo the subnet's size). Hosts of a cluster allocate from one
// subnet at once; starting each at its own place keeps them from all trying
// the same address first.
func (p *Pool) StartAt(seed uint64) {
	size := uint64(1)<<(32-p.subnet.Bits()) - 2
	a := p.first.As4()
	n := uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
	n += seed % size
	p.next = p.wrap(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}))
}

func (p *Pool) wrap(a netip.Addr) netip.Addr {
	if !p.usable(a) {
		return p.first
	}
	return a
}

// Release frees addr if owner holds it. Releasing a free address, or one
// another owner holds, is a no-op: a retried delete is harmless, and a late
// release cannot free the address of the port that took it next.
func (p *Pool) Release(addr netip.Addr, owner string) {
	if o, ok := p.owners[addr]; ok && o == owner {
		delete(p.owners, addr)
		p.available++
	}
}

// Free is the number of addresses still available.
func (p *Pool) Free() int { return p.available }

package datapath

import (
	"log/slog"
	"net/netip"
	"sync"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// TunnelOverhead is what VXLAN, or Geneve without options, over IPv4 adds
// to a frame on the underlay: outer IPv4 20 + UDP 8 + VXLAN or Geneve 8 +
// inner Ethernet 14.
const TunnelOverhead = 50

// UnderlayMTU warns when a network's full-size frames do not fit the
// underlay once tunnelled: OVS neither fragments the outer packets nor
// sends "fragmentation needed", so such packets vanish (ping works, TCP
// stalls); what the kernel's VXLAN device does with them depends on the
// path. Either way the network's MTU is wrong for the underlay.
// Each network is warned about once per MTU, and an underlay address on no
// interface once until it is found again, not at every EnsureNetwork. The
// zero value is ready; it is safe for concurrent use.
type UnderlayMTU struct {
	mu     sync.Mutex
	warned map[string]int // by network: the MTU last warned about
	lost   bool           // the last check found no interface
}

// Check checks n against the underlay's MTU: that of ifname, the interface
// holding the host's underlay address underlay (link.Holding; on the OVS
// userspace datapath br-phy's internal interface), or err, why none was
// found.
func (u *UnderlayMTU) Check(log *slog.Logger, n model.Network, underlay netip.Addr, ifname string, mtu int, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case err != nil:
		if !u.lost {
			log.Warn("underlay address on no interface of this host: tunnels to the other hosts cannot be sent",
				"underlay_ip", underlay, "err", err)
		}
		u.lost = true
	case n.MTU+TunnelOverhead > mtu:
		u.lost = false
		if u.warned[n.Name] != n.MTU {
			log.Warn("network MTU too large for the underlay: tunnelled full-size frames do not fit it",
				"network", n.Name, "mtu", n.MTU, "tunnel_overhead", TunnelOverhead, "underlay_interface", ifname, "underlay_mtu", mtu)
			if u.warned == nil {
				u.warned = map[string]int{}
			}
			u.warned[n.Name] = n.MTU
		}
	default:
		u.lost = false
		delete(u.warned, n.Name)
	}
}

// Forget drops what was warned of a deleted network: one made again under
// its name is checked afresh.
func (u *UnderlayMTU) Forget(network string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.warned, network)
}

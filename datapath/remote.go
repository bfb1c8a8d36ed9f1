package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// SelectRemote decides which remote ports a host with underlay address self
// programs, for both backends: the others are left out, with the reason,
// so that one bad or clashing record from another host never stops this
// host's reconcile. kept is in model.CompareRemote order.
//
// A port is left out when
//   - it cannot be programmed (checkRemote);
//   - its name is listed twice in its network, differently: which record
//     is right cannot be told, so neither is (the same record twice is one);
//   - its address or MAC is one that a local port of its network (in local)
//     has, or a remote port before it by name: a port moving between hosts
//     may show on both for a moment, and two hosts' ports may share a MAC.
//     The local port, then the first by name, wins rather than two entries
//     claiming one match, which an OpenFlow switch refuses and a kernel FDB
//     settles by whichever came last. A port left out claims nothing, so the
//     next by name may win.
//
// So the outcome is the same whatever the order of local and remote.
func SelectRemote(self netip.Addr, local []model.Port, remote []model.RemotePort) (kept []model.RemotePort, skips Skips) {
	skips = Skips{}
	if len(remote) == 0 {
		return nil, skips
	}
	if !slices.IsSortedFunc(remote, model.CompareRemote) {
		remote = slices.SortedFunc(slices.Values(remote), model.CompareRemote)
	}
	// Who has an address or canonical MAC in a network.
	type claim struct{ network, what string }
	owner := make(map[claim]string, 2*(len(local)+len(remote)))
	for _, l := range local {
		owner[claim{l.Network, l.IP.String()}] = "local port " + l.Name
		if mac, err := net.ParseMAC(l.MAC); err == nil {
			owner[claim{l.Network, mac.String()}] = "local port " + l.Name
		}
	}
	kept = make([]model.RemotePort, 0, len(remote))
	validNet := map[string]error{}
	for i := 0; i < len(remote); {
		r := remote[i]
		p := r.Port
		// The listings of p's name in its network follow each other.
		j := i + 1
		for j < len(remote) && remote[j].Port.Name == p.Name && remote[j].Port.Network == p.Network {
			j++
		}
		twice := slices.ContainsFunc(remote[i+1:j], func(o model.RemotePort) bool { return !sameRecord(o, r) })
		i = j
		netErr, seen := validNet[p.Network]
		if !seen {
			netErr = v1.ValidateName(p.Network)
			validNet[p.Network] = netErr
		}
		var mac string
		var err error
		switch {
		case netErr != nil:
			err = fmt.Errorf("network: %w", netErr)
		case twice:
			err = errors.New("listed twice, differently")
		default:
			mac, err = checkRemote(self, r)
		}
		if err == nil {
			ipClaim, macClaim := claim{p.Network, p.IP.String()}, claim{p.Network, mac}
			if o, taken := owner[ipClaim]; taken {
				err = fmt.Errorf("address %s is taken by %s", p.IP, o)
			} else if o, taken := owner[macClaim]; taken {
				err = fmt.Errorf("MAC %s is taken by %s", mac, o)
			} else {
				who := fmt.Sprintf("remote port %s (host %s)", p.Name, p.Host)
				owner[ipClaim], owner[macClaim] = who, who
			}
		}
		if err != nil {
			skips.Add(p.Network, p.Name, Skip{Host: p.Host, Reason: err.Error()})
			continue
		}
		kept = append(kept, r)
	}
	return kept, skips
}

// checkRemote returns the remote port's canonical MAC, or why it cannot be
// programmed on either backend: it needs a valid name, an IPv4 address (the
// OVS flows' cookie; the Linux neighbour entry), a unicast Ethernet MAC and
// another host's IPv4 underlay address (tunnels run over IPv4 only). Its
// network's name is checked by the caller.
func checkRemote(self netip.Addr, r model.RemotePort) (string, error) {
	p := r.Port
	if err := v1.ValidateName(p.Name); err != nil {
		return "", err
	}
	if !p.IP.Is4() {
		return "", fmt.Errorf("address %q is not IPv4", p.IP)
	}
	if !unicast(p.IP) {
		return "", fmt.Errorf("address %s is not a unicast address", p.IP)
	}
	mac, err := net.ParseMAC(p.MAC)
	if err != nil || len(mac) != 6 || mac[0]&1 != 0 || [6]byte(mac) == [6]byte{} {
		return "", fmt.Errorf("MAC %q is not a unicast Ethernet address", p.MAC)
	}
	switch host := r.HostIP; {
	case !host.IsValid():
		return "", errors.New("no host address")
	case !host.Is4():
		return "", fmt.Errorf("host address %s is not IPv4", host)
	case !unicast(host):
		return "", fmt.Errorf("host address %s is not a unicast address", host)
	case host == self.Unmap():
		return "", fmt.Errorf("host address %s is this host's own", host)
	}
	return mac.String(), nil
}

// unicast reports whether an IPv4 address can name one host: neither
// 0.0.0.0, nor multicast, nor the limited broadcast.
func unicast(a netip.Addr) bool {
	return !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// sameRecord reports whether two listings of a remote port program the
// same thing: what the other host's record holds besides (its ofport, its
// host link) is its own business and may change under it.
func sameRecord(a, b model.RemotePort) bool {
	return a.HostIP == b.HostIP && a.Port.Network == b.Port.Network && a.Port.Host == b.Port.Host &&
		a.Port.IP == b.Port.IP && strings.EqualFold(a.Port.MAC, b.Port.MAC)
}

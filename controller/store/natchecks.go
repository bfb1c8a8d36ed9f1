package store

import (
	"fmt"
	"net/netip"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// The checks of floating IPs and port forwards (docs/DESIGN.md §8.5), as
// pure functions of what a store holds at one moment, like checks.go's.

// natState is what the checks of a floating IP or a forward decide on.
type natState struct {
	networks []model.Network
	ports    map[string]model.Port // every host's, by name
	fips     []model.FloatingIP
	fwds     []model.PortForward
}

// checkFloatingIP refuses a floating IP that creates or replaces the one of
// its name when its port does not exist, or when its address would take
// packets another object takes: an address of a network's subnet, another
// floating IP's or a forward's host_ip; and a second floating IP of one
// port, whose own connections can leave with one source only.
func checkFloatingIP(s natState, f model.FloatingIP) error {
	if err := validName("floating IP", f.Name); err != nil {
		return err
	}
	if _, ok := s.ports[f.Port]; !ok {
		return errNoPort(f.Port)
	}
	if err := outsideSubnets(s.networks, "address", f.Address); err != nil {
		return err
	}
	for _, o := range s.fips {
		switch {
		case o.Name == f.Name:
		case o.Address == f.Address:
			return fmt.Errorf("%w: address %s is floating IP %q's", ErrConflict, f.Address, o.Name)
		case o.Port == f.Port:
			return fmt.Errorf("%w: port %q has floating IP %q", ErrConflict, f.Port, o.Name)
		}
	}
	for _, o := range s.fwds {
		if o.HostIP == f.Address {
			return fmt.Errorf("%w: address %s is the host_ip of port forward %q", ErrConflict, f.Address, o.Name)
		}
	}
	return nil
}

// checkPortForward refuses a forward that creates or replaces the one of
// its name when its port does not exist, when its host_ip is an address of
// a network's subnet or a floating address, or when it overlaps another
// forward of a port on the same host: only that host's rules take them,
// so forwards of ports on different hosts never conflict.
func checkPortForward(s natState, f model.PortForward) error {
	if err := validName("port forward", f.Name); err != nil {
		return err
	}
	p, ok := s.ports[f.Port]
	if !ok {
		return errNoPort(f.Port)
	}
	if f.HostIP.IsValid() {
		if err := outsideSubnets(s.networks, "host_ip", f.HostIP); err != nil {
			return err
		}
		for _, o := range s.fips {
			if o.Address == f.HostIP {
				return fmt.Errorf("%w: host_ip %s is floating IP %q's address", ErrConflict, f.HostIP, o.Name)
			}
		}
	}
	for _, o := range s.fwds {
		if o.Name == f.Name || !o.Overlaps(f) {
			continue
		}
		if q, ok := s.ports[o.Port]; ok && q.Host == p.Host {
			return fmt.Errorf("%w: host port %s is forwarded by %q (port %s%s)", ErrConflict, o, o.Name, o.Port, onHost(q.Host))
		}
	}
	return nil
}

func onHost(host string) string {
	if host == "" {
		return ""
	}
	return " on " + host
}

// outsideSubnets refuses an address the networks' own packets use.
func outsideSubnets(nets []model.Network, field string, addr netip.Addr) error {
	for _, n := range nets {
		if n.Subnet.Contains(addr) {
			return fmt.Errorf("%w: %s %s is in subnet %s of network %q", ErrConflict, field, addr, n.Subnet, n.Name)
		}
	}
	return nil
}

// subnetFree refuses a new network whose subnet holds a floating address or
// a forward's host_ip: its ports' packets would be translated away.
func subnetFree(n model.Network, fips []model.FloatingIP, fwds []model.PortForward) error {
	for _, f := range fips {
		if n.Subnet.Contains(f.Address) {
			return fmt.Errorf("%w: subnet %s holds floating IP %q's address %s", ErrConflict, n.Subnet, f.Name, f.Address)
		}
	}
	for _, f := range fwds {
		if f.HostIP.IsValid() && n.Subnet.Contains(f.HostIP) {
			return fmt.Errorf("%w: subnet %s holds port forward %q's host_ip %s", ErrConflict, n.Subnet, f.Name, f.HostIP)
		}
	}
	return nil
}

// natOf names the floating IPs and forwards of a port: a port's delete
// deletes them with it, in its transaction.
func natOf(port string, fips []model.FloatingIP, fwds []model.PortForward) (fipNames, fwdNames []string) {
	for _, f := range fips {
		if f.Port == port {
			fipNames = append(fipNames, f.Name)
		}
	}
	for _, f := range fwds {
		if f.Port == port {
			fwdNames = append(fwdNames, f.Name)
		}
	}
	return fipNames, fwdNames
}

// portsByName indexes ports by name.
func portsByName(ports []model.Port) map[string]model.Port {
	m := make(map[string]model.Port, len(ports))
	for _, p := range ports {
		m[p.Name] = p
	}
	return m
}

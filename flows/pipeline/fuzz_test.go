package pipeline

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// modelFrom builds a valid model from fuzz bytes: up to four networks
// (masquerading or not, with DHCP or not, by the bits of the second), a
// router per byte pair, a port per remaining byte; the last port is returned
// apart, to be attached incrementally.
func modelFrom(data []byte) (Model, model.Port, bool) {
	// Beyond a few dozen ports a model shows nothing new, and each costs the
	// fuzzer time it should spend on other shapes.
	if len(data) < 3 || len(data) > 48 {
		return Model{}, model.Port{}, false
	}
	var m Model
	nNets := int(data[0]%4) + 1
	for i := range nNets {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i + 1), 0, 0}), 24)
		m.Networks = append(m.Networks, model.Network{Name: fmt.Sprintf("n%d", i), Subnet: p, Gateway: p.Addr().Next(),
			MTU: 1500, Masquerade: data[1]>>i&1 == 1, DHCP: data[1]>>(i+4)&1 == 0, ID: i + 1})
	}
	nRouters := int(data[2] % 3)
	rest := data[3:]
	for r := 0; r < nRouters && len(rest) >= 2; r++ {
		a, b := int(rest[0])%nNets, int(rest[1])%nNets
		rest = rest[2:]
		if a != b {
			nets := []string{m.Networks[min(a, b)].Name, m.Networks[max(a, b)].Name}
			m.Routers = append(m.Routers, model.Router{Name: fmt.Sprintf("r%d", r), Networks: nets, ID: r + 1})
		}
	}
	used := map[netip.Addr]bool{}
	for i, c := range rest {
		n := m.Networks[int(c)%nNets]
		ip := netip.AddrFrom4([4]byte{10, byte(n.ID), 0, byte(c>>2) | 2})
		if used[ip] {
			continue
		}
		used[ip] = true
		name := fmt.Sprintf("p%d", i)
		m.Ports = append(m.Ports, model.Port{Name: name, Network: n.Name, Type: v1.PortVeth, IP: ip,
			MAC: model.PortMAC(name), HostIfname: model.HostIfname(name), Ofport: i + 1})
	}
	if len(m.Ports) == 0 {
		return Model{}, model.Port{}, false
	}
	last := m.Ports[len(m.Ports)-1]
	m.Ports = m.Ports[:len(m.Ports)-1]
	m.NAT = natFrom(m.Ports, rest)
	return m, last, true
}

// natFrom gives some of ports floating IPs and forwards, chosen by their
// bytes, and resolves them as a host does (model.ResolveNAT): addresses
// and host ports collide often, so that what is left out is exercised too.
func natFrom(ports []model.Port, data []byte) model.NAT {
	var fips []model.FloatingIP
	var fwds []model.PortForward
	byName := map[string]model.Port{}
	for i, p := range ports {
		byName[p.Name] = p
		c := data[i]
		if c&0x80 != 0 {
			fips = append(fips, model.FloatingIP{Name: "f" + p.Name, Address: netip.AddrFrom4([4]byte{203, 0, 113, c % 8}), Port: p.Name})
		}
		if c&0x40 != 0 {
			f := model.PortForward{Name: "w" + p.Name, Proto: model.ProtoTCP, HostPort: 8000 + uint16(c%4), TargetPort: 80 + uint16(c%3), Port: p.Name}
			if c&1 != 0 {
				f.Proto = model.ProtoUDP
			}
			if c&2 != 0 {
				f.HostIP = netip.AddrFrom4([4]byte{192, 0, 2, c % 4})
			}
			fwds = append(fwds, f)
		}
	}
	n, _ := model.ResolveNAT(fips, fwds, byName, nil)
	return n
}

// FuzzCompile checks, for any model (floating IPs and forwards included):
// the flows form a valid table (no two with one key, every match acceptable to a switch, every cookie ours) that
// keeps to the declared stages (checkStages), a recompile changes nothing,
// the NAT's flows are its own, and attaching one more port changes exactly its own flows and its
// network's flood group — what the backend sends.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{2, 1, 1, 0, 1, 5, 9, 14})
	f.Add([]byte{3, 7, 2, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{2, 1, 0, 0xc1, 0xc5, 0x43, 0x81, 0x46, 0xc2, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, extra, ok := modelFrom(data)
		if !ok {
			return
		}
		p := testPipeline()
		before, err := p.Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := flowset.Diff(space, before, flowset.Installed{}); err != nil {
			t.Fatal(err)
		}
		if err := checkStages(before); err != nil {
			t.Fatal(err)
		}
		for _, fl := range before.Flows {
			if err := openflow.Validate(fl.Match); err != nil {
				t.Fatalf("table %d priority %d: %v", fl.Table, fl.Priority, err)
			}
		}
		if plan, err := flowset.Change(space, before, before); err != nil || plan.Len() != 0 {
			t.Fatalf("recompile: %v, %d changes", err, plan.Len())
		}
		// The NAT's flows are its own: without it, exactly they go.
		byName := map[string]model.Network{}
		for _, n := range m.Networks {
			byName[n.Name] = n
		}
		bare := m
		bare.NAT = model.NAT{}
		without, err := p.Compile(bare)
		if err != nil {
			t.Fatal(err)
		}
		if plan, err := flowset.Change(space, before, without); err != nil || len(plan.Delete) != len(p.NAT(m.NAT, byName)) || len(plan.Delete) != plan.Len() {
			t.Fatalf("the NAT removed: %v, %d deletes of %d changes, want its %d flows", err, len(plan.Delete), plan.Len(), len(p.NAT(m.NAT, byName)))
		}
		m.Ports = append(m.Ports, extra)
		after, err := p.Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkStages(after); err != nil {
			t.Fatal(err)
		}
		plan, err := flowset.Change(space, before, after)
		if err != nil {
			t.Fatal(err)
		}
		var net model.Network
		for _, n := range m.Networks {
			if n.Name == extra.Network {
				net = n
			}
		}
		own := p.Port(extra, net)
		if len(plan.Add) != len(own) || len(plan.Modify)+len(plan.Delete) != 0 ||
			len(plan.GroupModify) != 1 || len(plan.GroupAdd)+len(plan.GroupDelete) != 0 ||
			len(plan.MeterAdd) != len(p.PortMeters(extra)) || len(plan.MeterModify)+len(plan.MeterDelete) != 0 {
			t.Fatalf("attaching one port: %d adds (want %d), %d modifies, %d deletes, groups +%d ~%d -%d, meters +%d ~%d -%d",
				len(plan.Add), len(own), len(plan.Modify), len(plan.Delete), len(plan.GroupAdd), len(plan.GroupModify), len(plan.GroupDelete),
				len(plan.MeterAdd), len(plan.MeterModify), len(plan.MeterDelete))
		}
	})
}

// policyFrom builds a policy over m's ports from fuzz bytes: three groups
// (IDs 1-3) with a rule per three bytes — either direction, any protocol,
// a port range, any peer, a CIDR or a group — and each port in the groups
// of a bitmask its byte gives; every group also has a member on another
// host.
func policyFrom(m Model, rules, memberships []byte) model.Policy {
	names := []string{"g0", "g1", "g2"}
	pol := model.Policy{Groups: map[string]model.SecurityGroup{}, Ports: map[string]model.GroupList{}, Members: map[string][]netip.Addr{}}
	for i, n := range names {
		pol.Groups[n] = model.SecurityGroup{Name: n, ID: i + 1, Rules: []model.Rule{}}
		pol.Members[n] = []netip.Addr{netip.AddrFrom4([4]byte{10, 200, 0, byte(i + 1)})}
	}
	for ; len(rules) >= 3; rules = rules[3:] {
		b0, b1, b2 := rules[0], rules[1], rules[2]
		g := pol.Groups[names[int(b0)%3]]
		r := model.Rule{Direction: model.Ingress + model.Direction(b0>>2&1),
			Proto: []uint8{model.ProtoAny, model.ProtoICMP, model.ProtoTCP, model.ProtoUDP}[b0>>3&3]}
		if r.Proto == model.ProtoTCP || r.Proto == model.ProtoUDP {
			r.PortMin = uint16(b1)<<4 | 1
			r.PortMax = r.PortMin + uint16(b2)*7
		}
		switch b0 >> 5 % 3 {
		case 1:
			r.Remote = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, b1, b2, 0}), int(b2%33)).Masked()
		case 2:
			r.RemoteGroup = names[int(b1)%3]
		}
		g.Rules = append(g.Rules, r)
		pol.Groups[g.Name] = g
	}
	for i, p := range m.Ports {
		var mask byte
		if i < len(memberships) {
			mask = memberships[i] % 8
		}
		var groups []string
		for j, n := range names {
			if mask>>j&1 == 1 {
				groups = append(groups, n)
				pol.Members[n] = append(pol.Members[n], p.IP)
			}
		}
		if groups != nil {
			pol.Ports[p.Name] = model.GroupList(strings.Join(groups, ","))
		}
	}
	for n := range pol.Members {
		slices.SortFunc(pol.Members[n], netip.Addr.Compare)
		pol.Members[n] = slices.Compact(pol.Members[n])
	}
	return pol
}

// FuzzPolicyCompile checks, for any policy over any model, on one host or
// a host of a cluster, with the pickup window open or closed: the flows
// form a valid table that keeps to the declared stages, the policy's
// flows are exactly 4 per guarded port (6 with the window open), 2 per
// member address (3 in a cluster with the window open) and one per port
// mask of each rule, and from one policy to another only the flows of
// what model.DiffPolicy names change — which is all the backend sends.
func FuzzPolicyCompile(f *testing.F) {
	f.Add([]byte{2, 1, 1, 0, 1, 5, 9, 14}, []byte{0x12, 0x34, 0x56, 0x48, 7, 9}, []byte{1, 2, 3, 4, 5}, false, false)
	f.Add([]byte{2, 1, 1, 0, 1, 5, 9, 14}, []byte{0x12, 0x34, 0x56, 0x48, 7, 9}, []byte{1, 2, 3, 4, 5}, false, true)
	f.Add([]byte{3, 7, 2, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8}, []byte{0xa8, 0, 255, 0x31, 80, 0}, []byte{7, 7, 0, 1}, true, false)
	f.Add([]byte{3, 7, 2, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8}, []byte{0xa8, 0, 255, 0x31, 80, 0}, []byte{7, 7, 0, 1}, true, true)
	f.Fuzz(func(t *testing.T, data, rules, memberships []byte, cluster, pickup bool) {
		m, _, ok := modelFrom(data)
		if !ok || len(rules) > 90 {
			return
		}
		m.Pickup = pickup
		p, perAddr := testPipeline(), 2
		if cluster {
			p = overlayPipeline()
			if pickup {
				perAddr = 3
			}
		}
		plain, err := p.Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		m.Policy = policyFrom(m, rules, memberships)
		d, err := p.Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := flowset.Diff(space, d, flowset.Installed{}); err != nil {
			t.Fatal(err)
		}
		if err := checkStages(d); err != nil {
			t.Fatal(err)
		}
		for _, fl := range d.Flows {
			if err := openflow.Validate(fl.Match); err != nil {
				t.Fatalf("table %d priority %d: %v", fl.Table, fl.Priority, err)
			}
		}
		perPort := 4
		if m.Pickup {
			perPort = 6
		}
		want := perPort * len(m.Policy.Ports)
		addrs := map[netip.Addr]bool{}
		for _, ms := range m.Policy.Members {
			for _, a := range ms {
				addrs[a] = true
			}
		}
		want += perAddr * len(addrs)
		for _, g := range m.Policy.Groups {
			for _, r := range g.Rules {
				want += max(1, len(PortMasks(r.PortMin, r.PortMax)))
			}
		}
		if got := len(d.Flows) - len(plain.Flows); got != want {
			t.Fatalf("%d policy flows, want %d", got, want)
		}

		// Another policy: only the flows of what DiffPolicy names change.
		next := m
		next.Policy = policyFrom(m, rules[min(3, len(rules)):], slices.Concat([]byte{5}, memberships))
		d2, err := p.Compile(next)
		if err != nil {
			t.Fatal(err)
		}
		ch := model.DiffPolicy(m.Policy, next.Policy)
		owners := NewOwners(next)
		prev := NewOwners(m)
		inChange := func(cookie uint64) bool {
			kind, object, _ := flowset.ParseCookie(cookie)
			switch kind {
			case KindRule:
				g, _, ok := owners.Rule(cookie)
				if !ok {
					g, _, ok = prev.Rule(cookie)
				}
				return ok && slices.Contains(ch.Groups, g)
			case KindMember:
				return slices.Contains(ch.Members, objectAddr(object))
			case KindPort:
				o, _ := owners.Of(cookie)
				return slices.Contains(ch.Ports, o.Name) || slices.Contains(ch.EgressFlip, o.Name)
			}
			return false
		}
		plan, err := flowset.Change(space, d, d2)
		if err != nil {
			t.Fatal(err)
		}
		for _, fm := range slices.Concat(plan.Add, plan.Modify, plan.Delete) {
			if !inChange(fm.Cookie) {
				t.Fatalf("flow %s changed, but DiffPolicy names nothing of it: %+v", openflow.FormatFlowMod(&fm), ch)
			}
		}
	})
}

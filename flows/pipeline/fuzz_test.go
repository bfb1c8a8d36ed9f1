package pipeline

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// modelFrom builds a valid model from fuzz bytes: up to four networks, a
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
			MTU: 1500, Masquerade: data[1]>>i&1 == 1, ID: i + 1})
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
	return m, last, true
}

// FuzzCompile checks, for any model: the flows form a valid table (no two
// with one key, every match acceptable to a switch, every cookie ours) that
// keeps to the declared stages (checkStages), a recompile changes nothing,
// and attaching one more port changes exactly its own flows and its
// network's flood group — what the backend sends.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{2, 1, 1, 0, 1, 5, 9, 14})
	f.Add([]byte{3, 7, 2, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8})
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
			len(plan.GroupModify) != 1 || len(plan.GroupAdd)+len(plan.GroupDelete) != 0 {
			t.Fatalf("attaching one port: %d adds (want %d), %d modifies, %d deletes, groups +%d ~%d -%d",
				len(plan.Add), len(own), len(plan.Modify), len(plan.Delete), len(plan.GroupAdd), len(plan.GroupModify), len(plan.GroupDelete))
		}
	})
}

package pipeline

import (
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
)

// TestDHCPFlows: a port's intercept and meter do not depend on its
// network's DHCP, so turning DHCP off or on adds or removes the network's
// one drop in the dhcp table and nothing else; no flow names a meter in an
// instruction (ovs-save's restore would fail on it, docs/PIPELINE.md,
// Meters); a port whose ofport no meter ID holds gets neither intercept
// nor meter, and its DHCP meets the spoof guard; and DHCP server messages
// from any port drop, above every port's flow, as dhcp_server.
func TestDHCPFlows(t *testing.T) {
	p := testPipeline()
	m := threeNetworks()
	blue, port := m.Networks[0], m.Ports[0]
	off := blue
	off.DHCP = false
	plan, err := flowset.Change(space, flowset.Desired{Flows: p.Network(blue)}, flowset.Desired{Flows: p.Network(off)})
	if err != nil || plan.Len() != 1 || len(plan.Add) != 1 || plan.Add[0].TableID != TableDHCP {
		t.Fatalf("DHCP off: %+v, %v", plan, err)
	}
	if a, b := render(flowset.Desired{Flows: p.Port(port, blue)}), render(flowset.Desired{Flows: p.Port(port, off)}); a != b {
		t.Fatalf("the port's flows depend on its network's DHCP:\n%s\n%s", a, b)
	}
	if got := render(flowset.Desired{Flows: p.Port(port, blue), Meters: p.PortMeters(port)}); !strings.Contains(got,
		"table=10, priority=210,udp,in_port=1,dl_src="+port.MAC+",tp_src=68,tp_dst=67 actions=goto_table:12") ||
		!strings.Contains(got, "table=12, priority=100,in_port=1 actions=controller(meter_id=1979777025)") ||
		!strings.Contains(got, "meter=1979777025 pktps burst stats bands= type=drop rate=10 burst_size=20") {
		t.Fatalf("port 1:\n%s", got)
	}
	d, err := p.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	all := render(d)
	if strings.Contains(all, "meter:") {
		t.Errorf("a meter instruction:\n%s", all)
	}
	if !strings.Contains(all, "table=10, priority=220,udp,tp_src=67,tp_dst=68 actions=drop") {
		t.Errorf("no guard against DHCP servers on ports:\n%s", all)
	}
	for _, f := range d.Flows {
		if f.Table == TableSpoofGuard && f.Priority >= prioDHCPServer && f.Cookie != p.Space.Cookie(KindBase, 0, 0) {
			t.Errorf("a port's flow at or above the DHCP server guard: %+v", f)
		}
	}
	if r, _ := DropReason(TableSpoofGuard, prioDHCPServer); r != v1.DropDHCPServer {
		t.Errorf("the guard's drop reason: %q", r)
	}
	for _, ofport := range []int{0xfeff, 0xff00} {
		port.Ofport = ofport
		intercept := strings.Contains(render(flowset.Desired{Flows: p.Port(port, blue)}), "priority=210")
		if want := ofport < 0xff00; intercept != want || (len(p.PortMeters(port)) == 1) != want {
			t.Errorf("ofport %#x: intercept %v, meters %v", ofport, intercept, p.PortMeters(port))
		}
	}
}

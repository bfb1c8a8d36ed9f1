package pipeline

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// checkStages checks compiled flows against the pipeline's declaration
// (Stages), as Faucet checks its flow mods against its table declarations:
// every flow is in a declared stage, every flow that drops (one without
// instructions) has a reason its stage declares at its priority, and every
// flow at such a priority drops, so that the exporter's and the trace's
// reading of a drop by its table and priority is right. The error names
// each flow that breaks a rule, as ovs-ofctl shows it.
func checkStages(d flowset.Desired) error {
	stages := map[uint8]Stage{}
	for _, s := range Stages() {
		stages[s.Table] = s
	}
	var errs []error
	for _, f := range d.Flows {
		text := strings.TrimSpace(render(flowset.Desired{Flows: []flowset.Flow{f}}))
		s, declared := stages[f.Table]
		reason, isDrop := s.Drops[f.Priority]
		switch {
		case !declared:
			errs = append(errs, fmt.Errorf("flow %s: table %d is no declared stage", text, f.Table))
		case len(f.Instructions) == 0 && !isDrop:
			errs = append(errs, fmt.Errorf("flow %s: drops, but stage %s declares no drop reason at priority %d", text, s.Name, f.Priority))
		case len(f.Instructions) != 0 && isDrop:
			errs = append(errs, fmt.Errorf("flow %s: does not drop, but stage %s declares priority %d a drop (%s)", text, s.Name, f.Priority, reason))
		}
	}
	return errors.Join(errs...)
}

// TestStagesDeclareCompiledFlows checks the golden models' flows against
// the declaration, and that each drop the declaration names is one some
// model's flows make: a declared reason no flow has would be a counter
// that never counts.
func TestStagesDeclareCompiledFlows(t *testing.T) {
	type drop struct {
		table    uint8
		priority uint16
	}
	made := map[drop]bool{}
	for _, c := range []struct {
		name string
		p    Pipeline
		m    Model
	}{
		{"three-networks", testPipeline(), threeNetworks()},
		{"overlay", overlayPipeline(), overlayModel()},
		{"security-groups", testPipeline(), securityGroups(t)},
		{"nat", testPipeline(), natModel()},
		{"security-groups-cluster", overlayPipeline(), securityGroupsCluster(t)},
		// The pickup window's flows, remote_sender's among them.
		{"security-groups-cluster, pickup window open", overlayPipeline(), withPickup(securityGroupsCluster(t))},
	} {
		d, err := c.p.Compile(c.m)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkStages(d); err != nil {
			t.Errorf("%s: the compiled flows break the declared stages:\n%v", c.name, err)
		}
		for _, f := range d.Flows {
			if len(f.Instructions) == 0 {
				made[drop{f.Table, f.Priority}] = true
			}
		}
	}
	for _, s := range Stages() {
		for _, prio := range slices.Sorted(maps.Keys(s.Drops)) {
			if !made[drop{s.Table, prio}] {
				t.Errorf("stage %s declares drop reason %s at priority %d, which no flow of the golden models has", s.Name, s.Drops[prio], prio)
			}
		}
	}
}

// TestCheckStagesNamesTheFlow: each rule's breach is found and the flow
// named.
func TestCheckStagesNamesTheFlow(t *testing.T) {
	c := space.Cookie(KindBase, 0, 0)
	for _, tc := range []struct {
		flow flowset.Flow
		want string
	}{
		{flow(7, prioExact, c, match(openflow.InPort(3)), gotoTable(TableL2)),
			"flow cookie=0x7601000000000000, table=7, priority=200,in_port=3 actions=goto_table:50: table 7 is no declared stage"},
		{drop(TableGateway, prioExact, c, openflow.InPort(3)),
			"flow cookie=0x7601000000000000, table=20, priority=200,in_port=3 actions=drop: drops, but stage gateway declares no drop reason at priority 200"},
		{flow(TableL2, prioMiss, c, match(), gotoTable(TableL2+1)),
			"does not drop, but stage l2_forward declares priority 0 a drop (unknown_dst)"},
	} {
		err := checkStages(flowset.Desired{Flows: []flowset.Flow{tc.flow}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkStages: %v\nwant an error with %q", err, tc.want)
		}
	}
}

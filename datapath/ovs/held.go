package ovs

import (
	"context"
	"fmt"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
)

// Held implements datapath.Backend: the ports of the bridge (their OVS
// ports, labelled with a port's name, and their host links), networks'
// Linux bridges a Linux backend left in this namespace (Prune's link.Prune
// deletes those too), and the flows of networks, routes and ports. It
// waits for the bridge's OpenFlow session to count the flows; the flows
// stay as they are (the model is not primed yet).
func (b *Backend) Held(ctx context.Context) (datapath.Held, error) {
	ports, networks, err := link.Held()
	if err != nil {
		return datapath.Held{}, fmt.Errorf("held objects: %w", err)
	}
	owned, err := b.db.OwnedPorts(b.bridge)
	if err != nil {
		return datapath.Held{}, fmt.Errorf("held objects: %w", err)
	}
	for _, op := range owned {
		if name := op.ExternalIDs[portKey]; name != "" {
			ports = append(ports, name)
		}
	}
	slices.Sort(ports)
	h := datapath.Held{Ports: slices.Compact(ports), Networks: networks}
	if err := b.waitConnected(ctx); err != nil {
		return datapath.Held{}, fmt.Errorf("held objects: %w", err)
	}
	flows, err := b.ourFlows(ctx)
	if err != nil {
		return datapath.Held{}, fmt.Errorf("held objects: %w", err)
	}
	// An empty model names no object: only the kind of each cookie counts.
	// Security groups' rules are left out: groups may exist without any
	// network, and a state with none compiles them anew. So are the NAT's
	// flows, which follow the ports they name.
	owners := pipeline.NewOwners(pipeline.Model{})
	for _, f := range flows {
		if owner, _ := owners.Of(f.Cookie); owner.Kind != v1.OwnerPipeline && owner.Kind != v1.OwnerRule && owner.Kind != v1.OwnerNAT {
			h.Flows++
		}
	}
	return h, nil
}

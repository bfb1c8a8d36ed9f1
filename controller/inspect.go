package controller

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// FlowFilter picks flows by owner: those of one port, or of one network
// (its own, its routes' and its ports'). Empty: all of ovs-vnet's flows.
type FlowFilter struct {
	Port, Network string
}

// Flows lists ovs-vnet's flows with their counters, each named by its owner.
func (c *Controller) Flows(ctx context.Context, f FlowFilter) ([]v1.Flow, error) {
	b, s, _, err := c.snapshot()
	if err != nil {
		return nil, err
	}
	lister := capabilities(b).FlowLister
	if lister == nil {
		return nil, fmt.Errorf("%w: the %s backend has no OpenFlow flows; its rules are in `nft list table inet ovs_vnet` and `nft list table bridge ovs_vnet`", ErrUnsupported, b.Info().Backend)
	}
	inNetwork := map[string]bool{}
	switch {
	case f.Port != "" && f.Network != "":
		return nil, fmt.Errorf("%w: give a port or a network, not both", v1.ErrInvalid)
	case f.Port != "":
		if _, err := c.Port(f.Port); err != nil {
			return nil, err
		}
	case f.Network != "":
		if _, err := c.Network(f.Network); err != nil {
			return nil, err
		}
		for _, p := range s.Ports {
			inNetwork[p.Name] = p.Network == f.Network
		}
		for _, r := range s.Remote {
			inNetwork[r.Port.Name] = r.Port.Network == f.Network
		}
	}
	flows, err := lister.Flows(ctx, s)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(flows, func(fl v1.Flow) bool {
		switch {
		case f.Port != "":
			return !isPort(fl) || fl.Owner != f.Port
		case f.Network != "":
			if isPort(fl) {
				return !inNetwork[fl.Owner]
			}
			return fl.Owner != f.Network
		}
		return false
	}), nil
}

// isPort tells the flows of a port, this host's or another's.
func isPort(fl v1.Flow) bool {
	return fl.OwnerKind == v1.OwnerPort || fl.OwnerKind == v1.OwnerRemote
}

// Trace explains what a packet the port q.From sends to q.To does, or one
// from outside, from q.FromAddress (natrace.go).
func (c *Controller) Trace(ctx context.Context, q v1.Query) (v1.Result, error) {
	if err := q.Check(); err != nil {
		return v1.Result{}, err
	}
	if !q.FromAddress.IsValid() {
		if err := c.knownPort(q.From); err != nil {
			return v1.Result{}, err
		}
	}
	b, s, addrs, err := c.snapshot()
	if err != nil {
		return v1.Result{}, err
	}
	tracer := capabilities(b).Tracer
	if tracer == nil {
		return v1.Result{}, fmt.Errorf("%w: the %s backend cannot trace", ErrUnsupported, b.Info().Backend)
	}
	if q.FromAddress.IsValid() {
		return c.traceFromOutside(ctx, b, s, addrs, q)
	}
	return tracer.Trace(ctx, s, q)
}

func (c *Controller) knownPort(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.ports[name]; !ok {
		return fmt.Errorf("%w: port %q", ErrNotFound, name)
	}
	return nil
}

// snapshot is the connected backend, a copy of the desired state, and the
// host's addresses its NAT was resolved with.
func (c *Controller) snapshot() (datapath.Backend, datapath.State, []netip.Addr, error) {
	addrs, err := c.localAddrs()
	if err != nil {
		return nil, datapath.State{}, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backend == nil {
		return nil, datapath.State{}, nil, fmt.Errorf("%w: %s", ErrNotReady, c.notReady)
	}
	routers := make([]model.Router, 0, len(c.routers))
	for _, r := range c.routers {
		routers = append(routers, cloneRouter(r))
	}
	return c.backend, datapath.State{
		Networks: slices.Collect(maps.Values(c.networks)),
		Routers:  routers,
		Ports:    slices.Collect(maps.Values(c.ports)),
		Remote:   c.remotePorts(),
		Policy:   c.policyLocked(),
		NAT:      c.natLocked(addrs),
	}, addrs, nil
}

// Info describes the backend in use, or says (ErrNotReady) why there is
// none yet; both from one snapshot, so the answer cannot change between.
func (c *Controller) Info() (datapath.Info, error) {
	st := c.status()
	if st.backend == nil {
		return datapath.Info{}, st.ready()
	}
	return st.backend.Info(), nil
}

// PortStats returns the counters of every attached port (for the exporter).
func (c *Controller) PortStats(ctx context.Context) ([]datapath.PortStats, error) {
	st := c.status()
	if st.backend == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotReady, st.notReady)
	}
	return st.backend.PortStats(ctx)
}

// SwitchStats returns the OpenFlow switch's counters; ok is false when the
// backend has none (Linux).
func (c *Controller) SwitchStats(ctx context.Context) (s datapath.SwitchStats, ok bool, err error) {
	st := c.status()
	if st.backend == nil {
		return s, false, fmt.Errorf("%w: %s", ErrNotReady, st.notReady)
	}
	src := capabilities(st.backend).SwitchStats
	if src == nil {
		return s, false, nil
	}
	s, err = src.SwitchStats(ctx)
	return s, true, err
}

// DHCPStats returns the counters of the backend's DHCP responder (for the
// exporter). A backend that answers no DHCP is ErrUnsupported: its
// collector fails rather than show counters that never move.
func (c *Controller) DHCPStats(ctx context.Context) (datapath.DHCPStats, error) {
	st := c.status()
	if st.backend == nil {
		return datapath.DHCPStats{}, fmt.Errorf("%w: %s", ErrNotReady, st.notReady)
	}
	server := capabilities(st.backend).DHCP
	if server == nil {
		return datapath.DHCPStats{}, fmt.Errorf("%w: the %s backend does not answer DHCP", ErrUnsupported, st.backend.Info().Backend)
	}
	return server.DHCPStats(ctx)
}

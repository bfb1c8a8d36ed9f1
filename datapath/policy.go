package datapath

import (
	"context"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// PolicyEnforcer is a backend that enforces security groups
// (docs/DESIGN.md §8.1): the controller hands it the whole policy, which
// it realises by what model.DiffPolicy finds changed.
type PolicyEnforcer interface {
	// SetPolicy replaces the policy as one atomic change of the datapath —
	// one OpenFlow bundle (OVS); at most one nft script for group chains
	// and one netlink batch for set elements (Linux) — sending only what
	// differs from the last policy it took: an equal one sends nothing.
	// Before the first Prune it only records p, which Prune (State.Policy)
	// then enforces whole, sending nothing when the datapath holds it
	// already. A local port of p.Ports not attached yet gets its rules
	// with its AttachPort, so that it never forwards unfiltered.
	SetPolicy(ctx context.Context, p model.Policy) error
	// PolicyStats is one snapshot of the rules' counters and, where no
	// switch counts them (Linux), the policy drops; bounded by ctx.
	PolicyStats(ctx context.Context) (PolicyStats, error)
}

// RuleStats counts what one rule of a group allowed.
type RuleStats struct {
	Group          string
	Index          int // the rule's index in the group's rules, from 0
	Packets, Bytes uint64
}

// PolicyStats are a PolicyEnforcer's counters.
type PolicyStats struct {
	Rules []RuleStats
	// Drops are the policy drops of a backend without an OpenFlow switch
	// (Linux); nil on OVS, whose SwitchStats count them by reason.
	Drops []DropStats
}

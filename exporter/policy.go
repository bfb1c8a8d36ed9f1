package exporter

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// policyCollector exports the security groups' counters: what each rule
// allowed and, for a backend without a switch (Linux), the policy drops,
// which a switch counts among its drop flows instead.
type policyCollector struct {
	source snapshot[datapath.PolicyStats]
	read   func(context.Context) (datapath.PolicyStats, error)

	rulePackets, ruleBytes *prometheus.Desc
	// The switch collector's, so that a policy drop is one series on
	// either backend; folded in its memory too.
	sw *switchCollector

	mu    sync.Mutex
	rules map[ruleKey]monotonic
}

type ruleKey struct {
	group string
	index int
}

func newPolicyCollector(read func(context.Context) (datapath.PolicyStats, error), sw *switchCollector) *policyCollector {
	labels := []string{"group", "rule"}
	return &policyCollector{
		read: read,
		sw:   sw,
		rulePackets: prometheus.NewDesc("ovs_vnet_security_group_rule_packets_total",
			"Packets a security group's rule allowed, by group and rule (its index in the group's rules, from 0).", labels, nil),
		ruleBytes: prometheus.NewDesc("ovs_vnet_security_group_rule_bytes_total",
			"Bytes a security group's rule allowed, by group and rule (its index in the group's rules, from 0).", labels, nil),
		rules: map[ruleKey]monotonic{},
	}
}

func (c *policyCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.rulePackets
	ch <- c.ruleBytes
}

func (c *policyCollector) collect(ctx context.Context) ([]prometheus.Metric, error) {
	s, err := c.source.get(ctx, c.read)
	if err != nil {
		return nil, fmt.Errorf("security group stats: %w", err)
	}
	var out []prometheus.Metric
	for _, r := range c.foldRules(s.Rules) {
		out = append(out, constMetric(c.rulePackets, prometheus.CounterValue, float64(r.Packets), r.Group, strconv.Itoa(r.Index)),
			constMetric(c.ruleBytes, prometheus.CounterValue, float64(r.Bytes), r.Group, strconv.Itoa(r.Index)))
	}
	for _, d := range c.sw.foldDrops(s.Drops) {
		out = append(out, constMetric(c.sw.dropPackets, prometheus.CounterValue, float64(d.Packets), d.Reason),
			constMetric(c.sw.dropBytes, prometheus.CounterValue, float64(d.Bytes), d.Reason))
	}
	return out, nil
}

// foldRules keeps each rule's counters from going down (monotonic): a
// backend resets them when it rewrites the group's rules (OVS replaces the
// flows, Linux the counters), and the series must not read as a reset. A
// rule gone from the snapshot (its group deleted, or shortened) is
// forgotten, so memory follows the rules that exist.
func (c *policyCollector) foldRules(rules []datapath.RuleStats) []datapath.RuleStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[ruleKey]bool, len(rules))
	out := make([]datapath.RuleStats, 0, len(rules))
	for _, r := range rules {
		k := ruleKey{r.Group, r.Index}
		// Labels must be unique per series, or the whole scrape fails.
		if r.Group == "" || seen[k] {
			continue
		}
		seen[k] = true
		m := c.rules[k]
		packets, bytes := m.fold(r.Packets, r.Bytes)
		c.rules[k] = m
		out = append(out, datapath.RuleStats{Group: r.Group, Index: r.Index, Packets: packets, Bytes: bytes})
	}
	for k := range c.rules {
		if !seen[k] {
			delete(c.rules, k)
		}
	}
	slices.SortFunc(out, func(a, b datapath.RuleStats) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Index, b.Index))
	})
	return out
}

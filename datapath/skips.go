package datapath

import (
	"log/slog"
	"maps"
	"slices"
)

// Skip is why a backend leaves a remote port out (it cannot be programmed,
// or clashes with a port that wins), with the port's host for the log.
// Both backends follow one rule: leave it out, program the rest, log it.
type Skip struct{ Host, Reason string }

// Skips are remote ports left out, by network, then by port name.
type Skips map[string]map[string]Skip

// Add records that port of network is left out.
func (s Skips) Add(network, port string, k Skip) {
	if s[network] == nil {
		s[network] = map[string]Skip{}
	}
	s[network][port] = k
}

// Networks lists the networks with ports left out.
func (s Skips) Networks() []string { return slices.Collect(maps.Keys(s)) }

// SkipLog is what was last logged of the remote ports left out, so that
// each is logged once when it is left out or its reason changes, and once
// when it no longer is, not at every call that hands the same set over.
type SkipLog struct{ last Skips }

// Networks lists the networks the last update left ports out of.
func (l *SkipLog) Networks() []string { return l.last.Networks() }

// Any reports whether the last update left ports of network out.
func (l *SkipLog) Any(network string) bool { return len(l.last[network]) > 0 }

// Update replaces what is known of networks with now (their ports left
// out) and logs the differences.
func (l *SkipLog) Update(log *slog.Logger, networks []string, now Skips) {
	if l.last == nil {
		l.last = Skips{}
	}
	for _, network := range slices.Compact(slices.Sorted(slices.Values(networks))) {
		was, is := l.last[network], now[network]
		for _, port := range slices.Sorted(maps.Keys(is)) {
			if k := is[port]; was[port] != k {
				log.Warn("remote port left out", "port", port, "network", network, "host", k.Host, "reason", k.Reason)
			}
		}
		for _, port := range slices.Sorted(maps.Keys(was)) {
			if _, ok := is[port]; !ok {
				log.Info("remote port no longer left out", "port", port, "network", network, "host", was[port].Host)
			}
		}
		if len(is) > 0 {
			l.last[network] = is
		} else {
			delete(l.last, network)
		}
	}
}

package ovs

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// ParseDpctlShow reads the datapaths out of `dpctl/show` (lib/dpctl.c,
// show_dpif): a line "TYPE@NAME:" per datapath, then indented lines of which
// these are read:
//
//	lookups: hit:N missed:N lost:N
//	flows: N
//	masks: hit:N total:N hit/pkt:F     (the kernel datapath only)
//
// Everything else — "cache:", "caches:", ports and their statistics — is
// skipped, so that additions in later OVS versions do not break it. The
// userspace (netdev) datapath prints no masks line: its HasMasks stays
// false. A datapath without a lookups line (its statistics could
// not be read) is still listed, with zeros.
func ParseDpctlShow(text string) ([]datapath.DatapathStats, error) {
	var out []datapath.DatapathStats
	for n, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, ok := strings.CutSuffix(line, ":")
			if !ok || !strings.Contains(name, "@") {
				return nil, fmt.Errorf("dpctl/show line %d: %q is not a datapath header (TYPE@NAME:)", n+1, line)
			}
			out = append(out, datapath.DatapathStats{Name: name})
			continue
		}
		key, rest, _ := strings.Cut(strings.TrimSpace(line), ":")
		if len(out) == 0 {
			if key == "lookups" || key == "flows" || key == "masks" {
				return nil, fmt.Errorf("dpctl/show line %d: %q before any datapath header", n+1, line)
			}
			continue
		}
		dp := &out[len(out)-1]
		var err error
		switch key {
		case "lookups":
			err = fields(rest, map[string]*uint64{"hit": &dp.Hit, "missed": &dp.Missed, "lost": &dp.Lost})
		case "flows":
			dp.Flows, err = strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
		case "masks":
			dp.HasMasks = true
			err = fields(rest, map[string]*uint64{"hit": &dp.MasksHit, "total": &dp.MasksTotal})
		}
		if err != nil {
			return nil, fmt.Errorf("dpctl/show line %d (%q): %w", n+1, strings.TrimSpace(line), err)
		}
	}
	return out, nil
}

// fields reads "k:v k:v ..." into the counters named in want; every one of
// them must be there, other keys (hit/pkt) are ignored.
func fields(s string, want map[string]*uint64) error {
	seen := 0
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, ":")
		if !ok {
			return fmt.Errorf("%q is not key:value", f)
		}
		dst, ok := want[k]
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		*dst = n
		seen++
	}
	if seen != len(want) {
		return fmt.Errorf("want the keys %s", strings.Join(keys(want), ", "))
	}
	return nil
}

func keys(m map[string]*uint64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

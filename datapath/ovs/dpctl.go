package ovs

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/ovs/unixctl"
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

// fragMinV4 is the smallest IPv4 fragment (all but the last) that the
// userspace datapath's reassembly before conntrack takes: its default, 1200,
// would drop every fragment of a network whose MTU is below that (576 at
// the least, model.MinMTU) at a port with security groups, whose packets
// go through conntrack. 400 is the smallest OVS accepts.
const fragMinV4 = 400

// parseIPFMinV4 reads "min v4 frag size: N" out of `dpctl/ipf-get-status`
// (lib/ipf.c, ipf_get_status).
func parseIPFMinV4(text string) (int, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "min v4 frag size:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		}
	}
	return 0, false
}

// ensureFragMin sets the userspace datapath's fragMinV4, which
// ovs-vswitchd does not keep across its restarts: called when the bridge
// (re)connects, it changes the setting only when the status shows another
// value, so that a daemon restart changes nothing. The kernel datapath
// reassembles in the kernel's conntrack: nothing to do.
func (b *Backend) ensureFragMin(ctx context.Context) error {
	if b.datapathType != "netdev" {
		return nil
	}
	ctl, err := b.controlSocket()
	if err != nil {
		return fmt.Errorf("fragment reassembly: %w", err)
	}
	status, err := unixctl.Call(ctx, ctl, "dpctl/ipf-get-status")
	if err != nil {
		return fmt.Errorf("fragment reassembly: %w", err)
	}
	if n, ok := parseIPFMinV4(status); ok && n == fragMinV4 {
		return nil
	}
	if _, err := unixctl.Call(ctx, ctl, "dpctl/ipf-set-min-frag", "v4", strconv.Itoa(fragMinV4)); err != nil {
		return fmt.Errorf("fragment reassembly: set the minimum IPv4 fragment to %d: %w", fragMinV4, err)
	}
	return nil
}

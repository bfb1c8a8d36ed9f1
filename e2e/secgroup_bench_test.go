package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// sgAttachPairs is how many ports with groups, and as many without, the
// attach comparison times at full size, alternated so that drift on the
// shared machine hits both alike.
const sgAttachPairs = 40

// The groups of BenchmarkSecurityGroups (issue 20, Scale and Speed): "big"
// is the group every bulk port joins, 20 rules of which one names big
// itself; r0..r9 each allow from big, so big's members are referenced by 10
// groups' rules; a port "with 3 groups" lists r0, r1, r2.
const (
	sgBig      = "big"
	sgRules    = 20
	sgReferrer = 10
)

var sgThree = []string{"r0", "r1", "r2"}

// BenchmarkSecurityGroups measures what security groups cost at -ports
// ports, on both backends:
//
//   - size: -ports ports attached into big in four steps (16 clients); at
//     each, the switch's flows (ovs-ofctl dump-flows, all and those of the
//     policy tables) or the kernel's rules and set elements of the policy
//     table (nft -j list table), and "x-linear", the growth per port from
//     N/2 to N over that from N/4 to N/2 (1 = linear);
//   - attach: one port after another on top, alternately with 3 groups and
//     without; p50 and mean of each and their ratio (target ≤ 1.2); on OVS
//     also the time of `ovs-appctl revalidator/wait`, which SetPolicy waits
//     for after a change packets can meet, and the waits the daemon logged
//     as failed;
//   - member: a port without groups PUT in place into big (-ports members,
//     referenced by 10 groups): OVS — the bundles and flow mods the daemon
//     sent (ovs-ofctl snoop) and the flows the switch changed (a flow
//     monitor); Linux — what `nft monitor` saw: transactions, element
//     lines, elements, anything else.
//
// Figures only: nothing here asserts a time.
func BenchmarkSecurityGroups(b *testing.B) {
	for _, backend := range []string{"ovs", "linux"} {
		b.Run(backend, func(b *testing.B) {
			hostNS := newNetns(b, "vnt-host-")
			d, box := startBenchDaemon(b, hostNS, backend)
			d.must("PUT", "/v1/networks/bench", `{"subnet":"10.80.0.0/16"}`, 201, nil)
			putBenchGroups(b, d)
			count := func() map[string]float64 { return nftCounts(b, hostNS) }
			if box != nil {
				count = func() map[string]float64 { return flowCounts(b, box) }
			}

			b.Run("size", func(b *testing.B) {
				var at []int
				var sizes []map[string]float64
				prev := 0
				for step := 1; step <= 4; step++ {
					end := step * *benchPorts / 4
					namespaces := make([]string, end-prev)
					for i := range namespaces {
						namespaces[i] = newNetns(b, "vnt-c-")
					}
					start := time.Now()
					attachConcurrently(b, d, prev, namespaces, *benchClients, sgBig)
					b.ReportMetric(time.Since(start).Seconds(), fmt.Sprintf("attach-s@%d", end))
					at, prev = append(at, end), end
					sizes = append(sizes, count())
				}
				for i, n := range at {
					for k, v := range sizes[i] {
						b.ReportMetric(v, fmt.Sprintf("%s@%d", k, n))
					}
				}
				for k := range sizes[0] {
					// Per port from N/4 to N/2 against from N/2 to N.
					low := (sizes[1][k] - sizes[0][k]) / float64(at[1]-at[0])
					high := (sizes[3][k] - sizes[1][k]) / float64(at[3]-at[1])
					if low > 0 {
						b.ReportMetric(high/low, "x-linear-"+k)
					}
					b.ReportMetric(high, "per-port-"+k)
				}
				b.ReportMetric(0, "ns/op")
			})

			// The first open port's namespace belongs to this level, not to
			// "attach": "member" PUTs that port again, and a namespace made
			// in "attach" is gone when it ends.
			openNS := newNetns(b, "vnt-s-")
			attached := false
			b.Run("attach", func(b *testing.B) {
				var open, guarded []time.Duration
				for i := range sgAttachPairs {
					// ABBA: neither kind always comes first.
					kinds := [][]string{nil, sgThree}
					if i%2 == 1 {
						slices.Reverse(kinds)
					}
					for _, groups := range kinds {
						ns, name := openNS, fmt.Sprintf("o%d", i)
						if groups != nil {
							ns, name = newNetns(b, "vnt-s-"), fmt.Sprintf("g%d", i)
						} else if i > 0 {
							ns = newNetns(b, "vnt-s-")
						}
						start := time.Now()
						if code, body := d.do("PUT", "/v1/ports/"+name, benchPortSpec(ns, groups)); code != 201 {
							b.Fatalf("PUT port %s: %d %s", name, code, body)
						}
						attached = attached || name == "o0"
						if groups != nil {
							guarded = append(guarded, time.Since(start))
						} else {
							open = append(open, time.Since(start))
						}
					}
				}
				openMean, guardedMean := meanMs(open), meanMs(guarded)
				openP50, _ := percentiles(open)
				guardedP50, _ := percentiles(guarded)
				b.ReportMetric(openP50, "open-p50-ms")
				b.ReportMetric(guardedP50, "groups-p50-ms")
				b.ReportMetric(openMean, "open-mean-ms")
				b.ReportMetric(guardedMean, "groups-mean-ms")
				b.ReportMetric(guardedP50/openP50, "x-open-p50")
				b.ReportMetric(guardedMean/openMean, "x-open-mean")
				_, guardedP99 := percentiles(guarded)
				b.ReportMetric(guardedP99, "groups-p99-ms")
				b.Logf("attach ms, open: %v\nwith 3 groups: %v", open, guarded)
				if box != nil {
					reportRevalidatorWait(b, box)
					// SetPolicy logs a wait that failed; the flows are in place.
					b.ReportMetric(float64(strings.Count(d.log.String(), "wait for the datapath's flows")), "wait-failures")
				}
				b.ReportMetric(0, "ns/op")
			})

			b.Run("member", func(b *testing.B) {
				if !attached {
					b.Skip("needs the open port o0 of attach")
				}
				put := func() {
					start := time.Now()
					defer func() { b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "put-ms") }()
					if code, body := d.do("PUT", "/v1/ports/o0", benchPortSpec(openNS, []string{sgBig})); code != 200 {
						b.Fatalf("PUT port o0 into %s: %d %s", sgBig, code, body)
					}
				}
				if box == nil {
					stop := testbed.NftMonitor(b, hostNS)
					put()
					reportNftEvents(b, stop())
					return
				}
				flows := watchFlows(b, box, "br-vnet")
				snoop := snoopController(b, box, "br-vnet", d)
				from := snoop.seen
				put()
				mods := snoop.mods()
				sent := snoop.read()[from:snoop.seen]
				b.ReportMetric(float64(strings.Count(sent, "type=OPEN_REQUEST")), "bundles")
				b.ReportMetric(float64(len(mods)), "sent-flow-mods")
				changed := 0
				for _, n := range flows.changes() {
					changed += n
				}
				b.ReportMetric(float64(changed), "switch-flow-changes")
				b.Logf("sent by the daemon:\n%s", strings.Join(mods, "\n"))
				b.ReportMetric(0, "ns/op")
			})
		})
	}
}

// reportRevalidatorWait reports how long one `ovs-appctl revalidator/wait`
// takes — what SetPolicy waits for after its bundle — on an idle switch and
// right after a flow change (a flow of a table the pipeline does not use,
// added and deleted in turn, so the switch ends as it was).
func reportRevalidatorWait(b *testing.B, box *testbed.Sandbox) {
	b.Helper()
	var idle, changed []time.Duration
	for i := range 10 {
		start := time.Now()
		box.Appctl(b, "revalidator/wait")
		idle = append(idle, time.Since(start))
		if i%2 == 0 {
			box.Ofctl(b, "add-flow", "br-vnet", "table=250,priority=1,actions=drop")
		} else {
			box.Ofctl(b, "del-flows", "br-vnet", "table=250")
		}
		start = time.Now()
		box.Appctl(b, "revalidator/wait")
		changed = append(changed, time.Since(start))
	}
	b.Logf("revalidator/wait ms, idle: %v\nafter a change: %v", idle, changed)
	for name, lat := range map[string][]time.Duration{"idle": idle, "changed": changed} {
		p50, p99 := percentiles(lat)
		b.ReportMetric(p50, "revalidator-wait-"+name+"-p50-ms")
		b.ReportMetric(p99, "revalidator-wait-"+name+"-max-ms")
	}
}

// benchPortSpec is a port's PUT body in the benchmarks' network.
func benchPortSpec(ns string, groups []string) map[string]any {
	spec := map[string]any{"network": "bench", "netns": ns}
	if len(groups) > 0 {
		spec["security_groups"] = groups
	}
	return spec
}

// putBenchGroups creates big (20 single-port rules, rule 0 from big itself)
// and r0..r9 (each allowing from big).
func putBenchGroups(b *testing.B, d *daemon) {
	b.Helper()
	type rule map[string]string
	rules := []rule{{"direction": "ingress", "protocol": "tcp", "ports": "5432", "remote_group": sgBig}}
	for i := 1; i < sgRules; i++ {
		rules = append(rules, rule{"direction": "ingress", "protocol": "tcp", "ports": strconv.Itoa(8000 + i)})
	}
	d.must("PUT", "/v1/security-groups/"+sgBig, map[string]any{"rules": rules}, 201, nil)
	for i := range sgReferrer {
		d.must("PUT", fmt.Sprintf("/v1/security-groups/r%d", i), map[string]any{"rules": []rule{
			{"direction": "ingress", "protocol": "tcp", "ports": "5432", "remote_group": sgBig},
		}}, 201, nil)
	}
}

// flowCounts counts the bridge's flows as the switch lists them: all, and
// those in the tables of the security-group stages.
func flowCounts(b *testing.B, box *testbed.Sandbox) map[string]float64 {
	b.Helper()
	policy := map[uint8]bool{}
	for _, t := range []uint8{
		pipeline.TableEgressCT, pipeline.TableEgressACL, pipeline.TableEgressPeer, pipeline.TableEgressRules,
		pipeline.TableEgressVerdict, pipeline.TableEgressOut, pipeline.TableIngressCT, pipeline.TableIngressACL,
		pipeline.TableIngressPeer, pipeline.TableIngressRules, pipeline.TableIngressVerdict, pipeline.TableOutput,
	} {
		policy[t] = true
	}
	counts := map[string]float64{"flows": 0, "policy-flows": 0}
	for _, line := range strings.Split(box.Ofctl(b, "dump-flows", "br-vnet"), "\n") {
		if !strings.Contains(line, "actions=") {
			continue
		}
		counts["flows"]++
		_, rest, _ := strings.Cut(line, " table=")
		n, _, _ := strings.Cut(rest, ",")
		if t, err := strconv.ParseUint(n, 10, 8); err == nil && policy[uint8(t)] {
			counts["policy-flows"]++
		}
	}
	return counts
}

// nftCounts counts the rules and the set elements of the Linux backend's
// security-group table, as nft lists them.
func nftCounts(b *testing.B, hostNS string) map[string]float64 {
	b.Helper()
	out := testbed.Run(b, "ip", "netns", "exec", hostNS, "nft", "-j", "list", "table", "inet", "ovs_vnet_sg")
	var doc struct {
		Nftables []struct {
			Rule json.RawMessage `json:"rule"`
			Set  *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		b.Fatalf("nft -j list table inet ovs_vnet_sg: %v\n%s", err, out)
	}
	counts := map[string]float64{"nft-rules": 0, "nft-elements": 0}
	for _, o := range doc.Nftables {
		if o.Rule != nil {
			counts["nft-rules"]++
		}
		if o.Set != nil {
			counts["nft-elements"] += float64(len(o.Set.Elem))
		}
	}
	return counts
}

// reportNftEvents reports what `nft monitor` printed for one change: its
// transactions, its element lines, the elements they name, and every other
// line (rules, chains, sets: none for a membership change).
func reportNftEvents(b *testing.B, events string) {
	b.Helper()
	var lines, elements, other int
	b.ReportMetric(float64(strings.Count(events, "# new generation")), "transactions")
	for _, line := range strings.Split(events, "\n") {
		switch {
		case line == "", strings.HasPrefix(line, "# new generation"):
			// nft's note of the transaction, one per batch.
		case strings.HasPrefix(line, "add element "), strings.HasPrefix(line, "delete element "):
			lines++
			_, set, _ := strings.Cut(line, "{")
			elements += strings.Count(set, ",") + 1
		default:
			other++
		}
	}
	b.ReportMetric(float64(lines), "element-lines")
	b.ReportMetric(float64(elements), "elements")
	b.ReportMetric(float64(other), "other-events")
	b.Logf("nft monitor:\n%s", events)
	b.ReportMetric(0, "ns/op")
}

// meanMs is the mean of lat in ms.
func meanMs(lat []time.Duration) float64 {
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	return float64(sum.Microseconds()) / 1000 / float64(len(lat))
}

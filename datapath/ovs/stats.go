package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/ovs/unixctl"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
)

// ErrSpoofCountersUnavailable marks a PortStats whose per-port counters came
// from OVSDB but whose anti-spoofing drop counts could not be read from the
// bridge (its OpenFlow session is down): every SpoofedPackets is then 0.
var ErrSpoofCountersUnavailable = errors.New("anti-spoofing drop counters unavailable")

// PortStats implements datapath.Backend: every port of ours on the
// integration bridge, with its Interface statistics from the OVSDB monitor
// cache (which ovs-vswitchd refreshes every stats-update-interval, 5 s by
// default and never faster) and the packets its anti-spoofing flow dropped,
// from one flow statistics request (shared with a SwitchStats under way, see
// ourFlows), sent before the cache is read so that the two overlap. When only
// the latter fails, the ports come back with SpoofedPackets 0 and an error
// that wraps ErrSpoofCountersUnavailable.
func (b *Backend) PortStats(ctx context.Context) ([]datapath.PortStats, error) {
	var spoofed map[string]uint64
	var spoofErr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		spoofed, spoofErr = b.spoofedByPort(ctx)
	}()
	rows, err := b.db.PortStatistics(ctx, b.bridge)
	if err != nil {
		<-read
		return nil, fmt.Errorf("port stats: %w", err)
	}
	out := make([]datapath.PortStats, 0, len(rows))
	for _, r := range rows {
		name := r.ExternalIDs[portKey]
		if name == "" {
			continue // ours, but not an attached port
		}
		out = append(out, datapath.PortStats{
			Port: name, Network: r.ExternalIDs[networkKey],
			RxPackets: r.Counter("rx_packets"), TxPackets: r.Counter("tx_packets"),
			RxBytes: r.Counter("rx_bytes"), TxBytes: r.Counter("tx_bytes"),
			RxDropped: r.Counter("rx_dropped"), TxDropped: r.Counter("tx_dropped"),
			RxErrors: r.Counter("rx_errors"), TxErrors: r.Counter("tx_errors"),
		})
	}
	<-read
	if spoofErr != nil {
		return out, fmt.Errorf("port stats: %w: %w", ErrSpoofCountersUnavailable, spoofErr)
	}
	for i := range out {
		out[i].SpoofedPackets = spoofed[out[i].Port]
	}
	return out, nil
}

// spoofedByPort reads the per-port anti-spoofing drops (table spoof_guard,
// the priority DropReason calls spoofed, in_port=OFPORT) and names each by
// the port that has that ofport in the state the flows are compiled from.
func (b *Backend) spoofedByPort(ctx context.Context) (map[string]uint64, error) {
	flows, err := b.ourFlows(ctx)
	if err != nil {
		return nil, err
	}
	byOfport := map[uint32]uint64{}
	for i := range flows {
		f := &flows[i]
		if reason, ok := b.dropReasons.of(f.TableID, f.Priority); !ok || reason != v1.DropSpoofed || len(f.Instructions) != 0 {
			continue
		}
		if port, ok := f.Match.Exact32(openflow.InPort(0)); ok {
			byOfport[port] += f.PacketCount
		}
	}
	out := make(map[string]uint64, len(byOfport))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ports := range b.state.ports {
		for name, p := range ports {
			if n, ok := byOfport[uint32(p.Ofport)]; ok && p.Ofport > 0 {
				out[name] = n
			}
		}
	}
	return out, nil
}

// dropReasonTable is pipeline.DropReason as a lookup table: DropReason
// builds the pipeline's stages anew on each call, and a scrape asks it once
// per flow (thousands of them with a thousand ports).
type dropReasonTable [256]map[uint16]string

// newDropReasonTable builds the table; the stages are fixed, so a backend
// builds it once.
func newDropReasonTable() *dropReasonTable {
	var t dropReasonTable
	seen := [256]bool{}
	for _, st := range pipeline.Stages() {
		if seen[st.Table] { // DropReason: the first stage of a table wins
			continue
		}
		seen[st.Table] = true
		t[st.Table] = st.Drops
	}
	return &t
}

// of is pipeline.DropReason(table, priority).
func (t *dropReasonTable) of(table uint8, priority uint16) (string, bool) {
	r, ok := t[table][priority]
	return r, ok
}

// flowDump is a dump of all our flows under way; Backend.dump holds it only
// while it runs.
type flowDump struct {
	done  chan struct{}
	flows []openflow.FlowStats // read only: shared by every caller
	err   error
}

// ourFlows returns the statistics of all our flows (every table). A caller
// that asks while another's dump is under way gets that dump's answer: the
// exporter takes PortStats and SwitchStats at the same time, and both read
// the same flows (the per-port spoof drops are drop flows too), so with a
// thousand ports ovs-vswitchd dumps some 7,000 flows once rather than those
// and the 4,000 of table spoof_guard again. The flows returned are shared
// and must not be modified.
func (b *Backend) ourFlows(ctx context.Context) ([]openflow.FlowStats, error) {
	b.dumpMu.Lock()
	d := b.dump
	if d == nil {
		d = &flowDump{done: make(chan struct{})}
		b.dump = d
		b.dumpMu.Unlock()
		d.flows, d.err = b.flowStats(ctx, openflow.TableAll)
		b.dumpMu.Lock()
		b.dump = nil
		b.dumpMu.Unlock()
		close(d.done)
		return d.flows, d.err
	}
	b.dumpMu.Unlock()
	select {
	case <-d.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("flow statistics: %w", ctx.Err())
	}
	if d.err != nil && ctx.Err() == nil && (errors.Is(d.err, context.Canceled) || errors.Is(d.err, context.DeadlineExceeded)) {
		// The dump ended with its caller's context, not ours.
		return b.flowStats(ctx, openflow.TableAll)
	}
	return d.flows, d.err
}

// flowStats asks the integration bridge for our flows (our cookie space) in
// table, or in every table for openflow.TableAll.
func (b *Backend) flowStats(ctx context.Context, table uint8) ([]openflow.FlowStats, error) {
	body, err := statsOf[*openflow.FlowStatsReply](ctx, b, openflow.FlowStatsByCookie(table, cookieSpace.Value, cookieSpace.Mask))
	if err != nil {
		return nil, fmt.Errorf("flow statistics: %w", err)
	}
	return body.Stats, nil
}

// statsOf sends a statistics request on the bridge's current session
// (ofconn.Stats), the one the reconciler holds. It fails at once when the
// bridge has none; ctx bounds the wait for the reply.
func statsOf[R openflow.MultipartReplyBody](ctx context.Context, b *Backend, req openflow.MultipartRequestBody) (R, error) {
	c, err := b.flows.Conn(b.dpid)
	if err != nil {
		var none R
		return none, err
	}
	return ofconn.Stats[R](ctx, c, req)
}

// SwitchStats implements datapath.SwitchStatsSource: the datapaths' flow
// caches from ovs-vswitchd's control socket (dpctl/show), the pipeline's
// OpenFlow tables (one table statistics request) and the packets of our
// drop flows by reason (one flow statistics request). Each part that fails
// is left empty and its error joined into the result's, so a scrape serves
// what it could read.
//
// The three requests go out at once: ovs-vswitchd answers them one after the
// other, but the round trips and our decoding of each overlap.
func (b *Backend) SwitchStats(ctx context.Context) (datapath.SwitchStats, error) {
	var s datapath.SwitchStats
	var errs [4]error
	var wg sync.WaitGroup
	wg.Go(func() { s.Datapaths, errs[0] = b.datapathStats(ctx) })
	wg.Go(func() { s.Tables, errs[1] = b.tableStats(ctx) })
	wg.Go(func() { s.Drops, errs[2] = b.dropStats(ctx) })
	wg.Go(func() { s.PathMTU, errs[3] = b.pathMTUStats(ctx) })
	wg.Wait()
	s.SparePorts = uint64(b.spares.freeCount())
	if err := errors.Join(errs[:]...); err != nil {
		return s, fmt.Errorf("switch stats: %w", err)
	}
	return s, nil
}

func (b *Backend) datapathStats(ctx context.Context) ([]datapath.DatapathStats, error) {
	ctl, err := b.controlSocket()
	if err != nil {
		return nil, fmt.Errorf("datapath stats: %w", err)
	}
	text, err := unixctl.Call(ctx, ctl, "dpctl/show")
	if err != nil {
		return nil, fmt.Errorf("datapath stats: %w", err)
	}
	dps, err := ParseDpctlShow(text)
	if err != nil {
		return nil, fmt.Errorf("datapath stats: %w", err)
	}
	return dps, nil
}

func (b *Backend) tableStats(ctx context.Context) ([]datapath.TableStats, error) {
	body, err := statsOf[*openflow.TableStatsReply](ctx, b, &openflow.TableStatsRequest{})
	if err != nil {
		return nil, fmt.Errorf("table stats: %w", err)
	}
	byTable := make(map[uint8]openflow.TableStats, len(body.Stats))
	for _, t := range body.Stats {
		byTable[t.TableID] = t
	}
	var out []datapath.TableStats
	for _, st := range pipeline.Stages() {
		t, ok := byTable[st.Table]
		if !ok {
			continue
		}
		out = append(out, datapath.TableStats{
			Table: st.Table, Name: st.Name,
			ActiveFlows: uint64(t.ActiveCount), Lookups: t.LookupCount, Matches: t.MatchedCount,
		})
	}
	return out, nil
}

// dropStats sums our drop flows by reason. Every reason of the pipeline is
// listed, in the pipeline's order, also when no flow of it exists now.
func (b *Backend) dropStats(ctx context.Context) ([]datapath.DropStats, error) {
	flows, err := b.ourFlows(ctx)
	if err != nil {
		return nil, fmt.Errorf("drop stats: %w", err)
	}
	var out []datapath.DropStats
	index := map[string]int{}
	for _, st := range pipeline.Stages() {
		for _, prio := range slices.Sorted(maps.Keys(st.Drops)) {
			reason := st.Drops[prio]
			if _, ok := index[reason]; !ok {
				index[reason] = len(out)
				out = append(out, datapath.DropStats{Reason: reason})
			}
		}
	}
	reasons := b.dropReasons
	for i := range flows {
		f := &flows[i]
		reason, ok := reasons.of(f.TableID, f.Priority)
		if !ok || len(f.Instructions) != 0 {
			continue
		}
		d := &out[index[reason]]
		d.Packets += f.PacketCount
		d.Bytes += f.ByteCount
	}
	return out, nil
}

// controlSocket is ovs-vswitchd's control socket: the configured one, else
// looked up anew each time, since a restarted ovs-vswitchd has a new pid and
// so a new socket name.
func (b *Backend) controlSocket() (string, error) {
	if b.vswitchdCtl != "" {
		return b.vswitchdCtl, nil
	}
	return FindVswitchdCtl(b.db.Endpoint())
}

// FindVswitchdCtl finds ovs-vswitchd's control socket the way ovs-appctl
// does by default: in the run directory, which is the directory of a unix
// OVSDB endpoint (unix:DIR/db.sock), ovs-vswitchd.pid holds the pid and
// the socket is ovs-vswitchd.PID.ctl. A TCP endpoint says nothing about
// where vswitchd runs: its socket must then be configured.
func FindVswitchdCtl(ovsdbEndpoint string) (string, error) {
	sock, ok := strings.CutPrefix(ovsdbEndpoint, "unix:")
	if !ok {
		return "", fmt.Errorf("find ovs-vswitchd control socket: OVSDB endpoint %q is not unix:PATH; configure the socket's path", ovsdbEndpoint)
	}
	dir := filepath.Dir(sock)
	pidfile := filepath.Join(dir, "ovs-vswitchd.pid")
	raw, err := os.ReadFile(pidfile)
	if err != nil {
		return "", fmt.Errorf("find ovs-vswitchd control socket: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return "", fmt.Errorf("find ovs-vswitchd control socket: %s does not hold a pid: %q", pidfile, strings.TrimSpace(string(raw)))
	}
	ctl := filepath.Join(dir, fmt.Sprintf("ovs-vswitchd.%d.ctl", pid))
	if _, err := os.Stat(ctl); err != nil {
		return "", fmt.Errorf("find ovs-vswitchd control socket: %w", err)
	}
	return ctl, nil
}

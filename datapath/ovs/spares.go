package ovs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/fault"
	"github.com/ovs-vnet/ovs-vnet/model"
	"github.com/ovs-vnet/ovs-vnet/ovsdb"
)

// Spare ports take OVS reconfiguration off the attach path. On the
// userspace datapath ovs-vswitchd needs 100 ms and more to add a port to a
// bridge of a thousand (docs/DESIGN.md §7), and the OpenFlow session waits
// behind it; adding 32 costs about the same. So veth pairs are made and put
// on the bridge ahead of time, in batches, and an attach only moves a free
// end into the port's namespace and installs the port's flows.
const (
	spareKey = "ovs-vnet-spare" // external ID of a spare's OVS port until its claim is written
	// spareRefillTimeout bounds one refill: creating the pairs, the OVSDB
	// transaction and ovs-vswitchd's ofports.
	spareRefillTimeout = 60 * time.Second
	// spareRelabelIdle is how long attaches must pause before claimed
	// spares' OVS ports get their port's external IDs, when no refill
	// carries them sooner: each OVSDB change makes ovs-vswitchd
	// reconfigure the whole bridge, which would stall the next attach.
	spareRelabelIdle = time.Second
	spareRetry       = 5 * time.Second
)

type spare struct {
	name   string
	ofport int
}

// spares keeps up to size free spares on the bridge while any network
// exists, and tracks who claimed which. Refills and relabels run in one
// goroutine, one OVSDB transaction each.
type spares struct {
	db     *ovsdb.Client
	bridge string
	size   int
	log    *slog.Logger

	// work serialises refills and drains, which both change the bridge.
	work    sync.Mutex
	mu      sync.Mutex
	active  bool // some network exists: keep size spares
	free    []spare
	claimed map[string]string         // port name → spare's host end
	relabel map[string]ovsdb.PortSpec // spare's host end → its claimed port's spec
	started bool

	kick chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

func newSpares(db *ovsdb.Client, bridge string, size int, log *slog.Logger) *spares {
	return &spares{db: db, bridge: bridge, size: size, log: log, claimed: map[string]string{},
		relabel: map[string]ovsdb.PortSpec{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// load finds the spares a previous run left: free ones whose OVS port has an
// ofport go back in the pool, claimed ones are remembered by port. Whatever
// else carries the spare alias is left for Prune to delete.
func (s *spares) load() error {
	free, claimed, err := link.Spares()
	if err != nil {
		return fmt.Errorf("spare ports: %w", err)
	}
	rows, err := s.db.OwnedPorts(s.bridge)
	if err != nil {
		return fmt.Errorf("spare ports: %w", err)
	}
	ofports := map[string]int{}
	for _, r := range rows {
		if r.ExternalIDs[spareKey] != "" && r.Ofport > 0 {
			ofports[r.Name] = r.Ofport
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range free {
		if ofport := ofports[name]; ofport > 0 && len(s.free) < s.size {
			s.free = append(s.free, spare{name, ofport})
		}
	}
	s.claimed = claimed
	return nil
}

// take returns the spare p is to use: the one it already claimed (named in
// the record, or found by its alias after a crash cut the record's update
// short), else a free one. ok is false when p must be attached the slow
// way: the pool is empty or off, or p already has a link or an OVS port of
// its own (one whose link was deleted under it is repaired in place, on
// its ofport), or the spare it claimed lost its link (a crash during its
// detach, or deleted by hand), which the slow way makes anew under the
// same name.
func (s *spares) take(p model.Port) (sp spare, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if link.IsSpare(p.HostIfname) {
		_, err := netlink.LinkByName(p.HostIfname)
		return spare{name: p.HostIfname}, err == nil
	}
	if name, ok := s.claimed[p.Name]; ok {
		return spare{name: name}, true
	}
	if len(s.free) == 0 || s.hasOwn(p) {
		s.kickLocked()
		return spare{}, false
	}
	sp, s.free = s.free[len(s.free)-1], s.free[:len(s.free)-1]
	s.claimed[p.Name] = sp.name
	s.kickLocked()
	return sp, true
}

// hasOwn tells whether p has a host link or an OVS port under its own
// name; one that cannot be read counts as there, for the slow way to sort
// out.
func (s *spares) hasOwn(p model.Port) bool {
	if _, err := netlink.LinkByName(p.HostIfname); err == nil {
		return true
	}
	has, err := s.db.HasPort(p.HostIfname)
	return has || err != nil
}

// claimedBy names the host end of the spare p claimed, "" if none.
func (s *spares) claimedBy(p model.Port) string {
	if link.IsSpare(p.HostIfname) {
		return p.HostIfname
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claimed[p.Name]
}

// labelled queues the claimed spare's OVS port for its port's external IDs.
func (s *spares) labelled(spec ovsdb.PortSpec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.relabel[spec.Name] = spec
	s.kickLocked()
}

// forget drops p's claim once its spare is gone.
func (s *spares) forget(p model.Port) {
	name := s.claimedBy(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.relabel, name)
	delete(s.claimed, p.Name)
}

func (s *spares) freeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.free)
}

// want adds the free spares' host ends to the links and OVS ports Prune keeps.
func (s *spares) want(links map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.free {
		links[sp.name] = link.SpareAlias
	}
}

// retain keeps only the claims of the ports named, after a Prune has
// deleted the other claimed spares' links.
func (s *spares) retain(ports map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.DeleteFunc(s.claimed, func(port, _ string) bool { return !ports[port] })
}

func (s *spares) kickLocked() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// setActive says whether any network exists. The first activation starts
// the refills; deactivation removes the free spares before it returns, so
// a host without networks holds no link of ours.
func (s *spares) setActive(ctx context.Context, active bool) error {
	if s.size == 0 {
		return nil
	}
	s.mu.Lock()
	s.active = active
	if active && !s.started {
		s.started = true
		runCtx, stop := context.WithCancel(context.Background())
		s.stop = stop
		go s.run(runCtx)
	}
	s.kickLocked()
	s.mu.Unlock()
	if active {
		return nil
	}
	return s.drain(ctx)
}

// drain deletes the free spares: their OVS ports in one transaction, then
// their links.
func (s *spares) drain(ctx context.Context) error {
	s.work.Lock()
	defer s.work.Unlock()
	s.mu.Lock()
	if s.active {
		s.mu.Unlock()
		return nil
	}
	var names []string
	for _, sp := range s.free {
		names = append(names, sp.name)
	}
	s.free = nil
	s.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	if err := s.db.DeletePorts(ctx, s.bridge, names); err != nil {
		return fmt.Errorf("spare ports: %w", err)
	}
	deleteLinks(names)
	return nil
}

func (s *spares) close() {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if started {
		s.stop()
		<-s.done
	}
}

// run refills the pool when it is half empty and writes claims into OVSDB
// with the refill, or once attaches pause.
func (s *spares) run(ctx context.Context) {
	defer close(s.done)
	idle := time.NewTimer(spareRelabelIdle)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			idle.Reset(spareRelabelIdle)
			if !s.low() {
				continue
			}
		case <-idle.C:
		}
		if err := s.refill(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("spare ports: refill failed; retrying", "err", err)
			idle.Reset(spareRetry)
		}
	}
}

func (s *spares) low() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active && len(s.free) <= s.size/2
}

// refill tops the pool up to size when it is half empty, and writes the
// pending claims, in one transaction.
func (s *spares) refill(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, spareRefillTimeout)
	defer cancel()
	s.work.Lock()
	defer s.work.Unlock()
	s.mu.Lock()
	n := 0
	if s.active && len(s.free) <= s.size/2 {
		n = s.size - len(s.free)
	}
	specs := slices.Collect(maps.Values(s.relabel))
	s.mu.Unlock()
	if n == 0 && len(specs) == 0 {
		return nil
	}
	ready, err := s.add(ctx, n)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.free = append(ready, s.free...)
	s.mu.Unlock()
	// Ports detached since the list was taken are skipped, not recreated;
	// one detached during the transaction fails it, and it is tried again.
	if err := s.db.SetExternalIDs(ctx, s.bridge, specs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, spec := range specs {
		if s.relabel[spec.Name].ExternalIDs[portKey] == spec.ExternalIDs[portKey] {
			delete(s.relabel, spec.Name)
		}
	}
	return nil
}

// add makes n spares and puts them on the bridge in one transaction; on
// failure it removes what it made.
func (s *spares) add(ctx context.Context, n int) ([]spare, error) {
	if n == 0 {
		return nil, nil
	}
	var made []string
	var specs []ovsdb.PortSpec
	undo := func(err error) ([]spare, error) {
		// Best effort: what is left is the next start's Prune's.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), spareRefillTimeout)
		defer cancel()
		_ = s.db.DeletePorts(dctx, s.bridge, made)
		deleteLinks(made)
		return nil, err
	}
	for range n {
		name, err := link.NewSpare(defaultMTU)
		if err != nil {
			return undo(err)
		}
		made = append(made, name)
		specs = append(specs, ovsdb.PortSpec{Name: name, ExternalIDs: map[string]string{spareKey: "free"}})
	}
	if err := s.db.AddPorts(ctx, s.bridge, specs); err != nil {
		return undo(err)
	}
	ready := make([]spare, 0, n)
	for _, name := range made {
		ofport, err := s.db.WaitOfport(ctx, name)
		if err != nil {
			return undo(err)
		}
		ready = append(ready, spare{name, ofport})
	}
	return ready, nil
}

// defaultMTU is a spare's MTU until a claim sets its network's.
const defaultMTU = 1500

func deleteLinks(names []string) {
	for _, name := range names {
		if l, err := netlink.LinkByName(name); err == nil {
			_ = netlink.LinkDel(l)
		}
	}
}

// attachSpare installs p's flows while it gives the spare to p; no OVSDB
// change waits on the way. The two run at once because both mostly wait:
// the bundle on ovs-vswitchd, the move of the free end into the namespace
// on the kernel (an RCU barrier, about 15 ms here). The bundle is sent
// first: the move's link events make ovs-vswitchd reconfigure the whole
// bridge, and a request sent after them would wait for that. Until the
// claim is done the spare carries no traffic, so its flows match nothing.
// The returned port names the spare as its host link. A failure removes
// the spare, so the controller's rollback, which knows only the port, has
// nothing left to undo.
func (b *Backend) attachSpare(ctx context.Context, n model.Network, p model.Port, sp spare) (model.Port, error) {
	orig := p
	p.HostIfname = sp.name
	var err error
	if sp.ofport == 0 {
		sp.ofport, err = b.recoverSpare(ctx, n, p)
	}
	if err == nil {
		p.Ofport = sp.ofport
		flows := make(chan error, 1)
		go func() { flows <- b.putPort(ctx, p) }()
		err = link.ClaimSpare(ctx, n, p, b.linkOpts)
		if ferr := <-flows; ferr != nil {
			err = errors.Join(err, fmt.Errorf("flows: %w", ferr))
		}
	}
	if err != nil {
		return orig, errors.Join(fmt.Errorf("port %s: %w", p.Name, err), b.DetachPort(ctx, n, p))
	}
	fault.Point("attach-after-flows")
	b.spares.labelled(b.portSpec(n, p))
	return p, nil
}

// recoverSpare returns the ofport of a spare claimed before a restart, and
// puts it back on the bridge if a crash during its detach took it off, or
// binds it again to its link (rebindSpec).
func (b *Backend) recoverSpare(ctx context.Context, n model.Network, p model.Port) (int, error) {
	spec, _, err := b.rebindSpec(ctx, n, p)
	if err != nil {
		return 0, err
	}
	has, err := b.db.HasPort(p.HostIfname)
	if err == nil && !has {
		err = b.db.AddPort(ctx, b.bridge, spec)
	}
	if err != nil {
		return 0, err
	}
	return b.db.WaitOfport(ctx, p.HostIfname)
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// The live side of the cluster store: host records on leases, and the watch.

// Register keeps h's record under a lease it keeps alive, and writes the
// record anew on a new lease whenever the lease is lost: revoked, or expired
// while etcd was out of reach. It retries with backoff until ctx ends (or the
// store is closed), and returns nil then, leaving the lease to run out on its
// own. It fails at once for a host it cannot store, and whenever it finds
// the record held by another daemon (ErrConflict): at the start or when
// registering again.
func (s *Etcd) Register(ctx context.Context, h Host, registered func()) error {
	if err := validName("host", h.Name); err != nil {
		return err
	}
	if !h.UnderlayIP.IsValid() {
		return fmt.Errorf("host %q has no underlay address", h.Name)
	}
	val, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("register host %q: %w", h.Name, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.closed, cancel)()
	log := s.log.With("host", h.Name)
	wait := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	live, failing := false, false
	for ctx.Err() == nil {
		lease, err := s.putHost(ctx, h, string(val))
		if errors.Is(err, ErrConflict) {
			return err
		}
		if err != nil {
			if ctx.Err() == nil && !failing {
				log.Warn("cannot register host; retrying", "err", err)
				failing = true
			}
			wait.sleep(ctx)
			continue
		}
		wait.reset()
		switch {
		case failing:
			log.Info("host registered again", "lease", fmt.Sprintf("%x", lease))
		case !live:
			log.Info("host registered", "lease", fmt.Sprintf("%x", lease), "ttl", s.cfg.LeaseTTL)
		}
		if !live && registered != nil {
			registered()
		}
		live, failing = true, false
		// The channel closes when ctx ends, when the lease is gone (revoked
		// or expired) and when no keepalive was answered for a TTL.
		alive, err := s.cli.KeepAlive(ctx, lease)
		if err == nil {
			for range alive {
			}
		}
		if ctx.Err() != nil {
			break
		}
		log.Warn("host registration lost; registering again", "lease", fmt.Sprintf("%x", lease))
		failing = true
		wait.sleep(ctx)
	}
	return nil
}

// putHost writes h's record, val, on a new lease where there is no record
// or h's own (a daemon restarted within its lease, or one that lost its
// lease while etcd was out of reach and whose record has not expired yet).
// Another record of that name is another daemon's: ErrConflict.
func (s *Etcd) putHost(ctx context.Context, h Host, val string) (lease clientv3.LeaseID, err error) {
	ttl := int64(math.Ceil(s.cfg.LeaseTTL.Seconds()))
	key := s.key(hostsDir, h.Name)
	err = s.do(ctx, fmt.Sprintf("register host %q", h.Name), func(ctx context.Context) error {
		for {
			resp, err := s.cli.Get(ctx, key)
			if err != nil {
				return err
			}
			// Absent, or exactly as read: the record is not another's.
			unchanged := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
			if len(resp.Kvs) > 0 {
				kv := resp.Kvs[0]
				if err := ownRecord(h, kv.Value); err != nil {
					return err
				}
				unchanged = clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)
			}
			grant, err := s.cli.Grant(ctx, ttl)
			if err != nil {
				return err
			}
			txn, err := s.cli.Txn(ctx).If(unchanged).Then(clientv3.OpPut(key, val, clientv3.WithLease(grant.ID))).Commit()
			switch {
			case err != nil:
				// It may have been applied: the lease may hold the record,
				// and is left to expire. The next try finds the record h's.
				return err
			case txn.Succeeded:
				lease = grant.ID
				return nil
			}
			// Changed since it was read: let the unused lease go, read again.
			_, _ = s.cli.Revoke(ctx, grant.ID)
		}
	})
	return lease, err
}

// ownRecord refuses a host record that is not h's.
func ownRecord(h Host, raw []byte) error {
	var other Host
	if err := json.Unmarshal(raw, &other); err != nil {
		return fmt.Errorf("%w: host %q has a record that does not decode (%v): %s", ErrConflict, h.Name, err, raw)
	}
	if other != h {
		return fmt.Errorf("%w: host %q is live with underlay %s (another daemon with the same --host-name?)",
			ErrConflict, h.Name, other.UnderlayIP)
	}
	return nil
}

// Watch sends the changes of networks, routers, security groups, ports,
// floating IPs, port forwards and hosts from revision from on (from <= 0: from now), in order, until ctx
// ends or the store is closed; then it closes the channel. It rides out
// etcd outages: the watch resumes after the last revision it sent. When
// etcd has compacted away revisions it still had to send, it sends one
// Event with Reset set and closes the channel.
func (s *Etcd) Watch(ctx context.Context, from int64) <-chan Event {
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.closed, cancel)()
		s.watch(ctx, from, out)
	}()
	return out
}

// errReset ends a watch that cannot resume.
var errReset = errors.New("watch reset")

func (s *Etcd) watch(ctx context.Context, next int64, out chan<- Event) {
	w := watcher{Etcd: s, next: next, out: out}
	wait := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	for ctx.Err() == nil {
		err := w.run(ctx)
		switch {
		case ctx.Err() != nil || errors.Is(err, errReset):
			return
		case w.broken:
			// Lost again before it delivered anything: no new log line.
		case err != nil:
			s.log.Warn("watch lost; resuming", "from", w.next, "err", err)
		default:
			s.log.Warn("watch closed; resuming", "from", w.next)
		}
		if w.delivered {
			wait.reset()
		}
		w.broken = true
		wait.sleep(ctx)
	}
}

// watcher is one Watch: where it is, and whether it is cut off.
type watcher struct {
	*Etcd
	next      int64 // the revision to resume from
	out       chan<- Event
	broken    bool // since the last error, nothing was delivered
	delivered bool // the last run delivered something
}

// run watches from w.next until the watch ends, and says why.
func (w *watcher) run(ctx context.Context) error {
	// WithRequireLeader: a member cut off from the others ends the watch
	// (ErrNoLeader) rather than keep it silent; it is opened again, on
	// whichever member answers.
	ctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	w.delivered = false
	watch := w.cli.Watch(ctx, w.root, clientv3.WithPrefix(), clientv3.WithRev(w.next),
		clientv3.WithCreatedNotify(), clientv3.WithProgressNotify())
	for resp := range watch {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			w.log.Warn("watch cannot resume: revisions compacted; reloading", "from", w.next, "compacted", resp.CompactRevision)
			send(ctx, w.out, Event{Reset: true, Revision: resp.CompactRevision})
			return errReset
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if w.broken {
			w.log.Info("watch resumed", "from", w.next)
			w.broken = false
		}
		w.delivered = true
		switch rev := resp.Header.GetRevision(); {
		case resp.Created && w.next <= 0:
			// From now: now is this revision. (A watch from an older
			// revision is told it was created before it replays.)
			w.next = rev + 1
		case resp.IsProgressNotify() && rev >= w.next:
			// Sent only to a watch that has caught up: nothing is missed.
			w.next = rev + 1
		}
		for _, ev := range resp.Events {
			if e, ok := w.event(ev); ok && !send(ctx, w.out, e) {
				return ctx.Err()
			}
		}
		if n := len(resp.Events); n > 0 {
			w.next = resp.Events[n-1].Kv.ModRevision + 1
		}
	}
	return nil
}

func send(ctx context.Context, out chan<- Event, e Event) bool {
	select {
	case out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}

// event decodes a change of a key. Addresses, references and the topology
// and group set keys are the store's own bookkeeping: they make no event. A record that does not
// decode is logged and skipped.
func (s *Etcd) event(ev *clientv3.Event) (Event, bool) {
	rel, _ := strings.CutPrefix(string(ev.Kv.Key), s.root)
	dir, name, _ := strings.Cut(rel, "/")
	e := Event{Name: name, Revision: ev.Kv.ModRevision}
	var v any
	switch dir + "/" {
	case networksDir:
		e.Kind, e.Network = KindNetwork, new(model.Network)
		v = e.Network
	case routersDir:
		e.Kind, e.Router = KindRouter, new(model.Router)
		v = e.Router
	case portsDir:
		e.Kind, e.Port = KindPort, new(model.Port)
		v = e.Port
	case hostsDir:
		e.Kind, e.Host = KindHost, new(Host)
		v = e.Host
	case groupsDir:
		e.Kind, e.SecurityGroup = KindSecurityGroup, new(model.SecurityGroup)
		v = e.SecurityGroup
	case fipsDir:
		e.Kind, e.FloatingIP = KindFloatingIP, new(model.FloatingIP)
		v = e.FloatingIP
	case fwdsDir:
		e.Kind, e.PortForward = KindPortForward, new(model.PortForward)
		v = e.PortForward
	default:
		return e, false
	}
	if ev.Type == mvccpb.DELETE {
		e.Network, e.Router, e.Port, e.Host, e.SecurityGroup, e.FloatingIP, e.PortForward = nil, nil, nil, nil, nil, nil, nil
		return e, true
	}
	if err := json.Unmarshal(ev.Kv.Value, v); err != nil {
		s.log.Error("skipping a record that does not decode", "key", string(ev.Kv.Key), "revision", e.Revision, "err", err)
		return e, false
	}
	return e, true
}

// backoff doubles a pause from min up to max, with jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits for the next pause or until ctx ends.
func (b *backoff) sleep(ctx context.Context) {
	b.cur = min(max(2*b.cur, b.min), b.max)
	t := time.NewTimer(b.cur/2 + rand.N(b.cur/2+1))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

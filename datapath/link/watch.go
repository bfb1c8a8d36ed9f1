package link

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

const (
	// resubscribeDelay spaces attempts to subscribe again to link events
	// after the subscription failed (a receive buffer overrun ends it).
	resubscribeDelay = time.Second
	// linksMaxAge bounds how long a dump of the links serves checks. Link
	// events invalidate it at once; the bound is for an event lost in an
	// overrun before the subscription is made again.
	linksMaxAge = time.Second
	// minDumpAge is how old a dump must be before a link event makes it
	// stale (Link).
	minDumpAge = 100 * time.Millisecond
	// dumpTimeout bounds a dump of the links: the kernel answers in
	// milliseconds, but a check must not wait on a stuck socket.
	dumpTimeout = 5 * time.Second
	// eventBuffer is how many link events wait for the watcher before
	// netlink's reader blocks on them.
	eventBuffer = 64
)

// Watcher follows the links of the namespace it was made in: it signals,
// coalesced, when a link of ovs-vnet's changes or goes, and holds one dump
// of the links for the checks made after a signal, so that checking every
// port costs one dump rather than one request per port. A new link is
// announced with its first change after its alias is set (the kernel
// tells of no alias change by itself); an attach always makes one.
type Watcher struct {
	ns      netns.NsHandle
	h       *netlink.Handle
	log     *slog.Logger
	changed chan struct{}
	done    chan struct{}
	stopped chan struct{}

	// gen counts the events seen.
	gen atomic.Uint64
	// dumpMu serialises dumps, so that checks made at once share one, and
	// guards links: the dump made at generation linksGen, at linksAt.
	dumpMu   sync.Mutex
	links    map[string]netlink.Link
	linksGen uint64
	linksAt  time.Time
}

// Watch starts a Watcher of the calling thread's network namespace: the
// daemon's, or a test's host namespace when the caller runs locked in it.
// It fails when the first subscription does.
func Watch(log *slog.Logger) (*Watcher, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("watch links: own netns: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err == nil {
		// The dumps serve checks that have deadlines of their own.
		if err = h.SetSocketTimeout(dumpTimeout); err != nil {
			h.Close()
		}
	}
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("watch links: netlink: %w", err)
	}
	w := &Watcher{ns: ns, h: h, log: log, changed: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	updates, stop, err := w.subscribe()
	if err != nil {
		h.Close()
		ns.Close()
		return nil, fmt.Errorf("watch links: %w", err)
	}
	go w.run(updates, stop)
	return w, nil
}

// Changed is signalled, coalesced, when a link of ovs-vnet's (other than a
// free spare, which no port uses) changes or goes. It is never closed.
func (w *Watcher) Changed() <-chan struct{} { return w.changed }

// Signal signals Changed, for a change seen elsewhere (the switch's).
func (w *Watcher) Signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// Close ends the subscription and waits for its goroutines.
func (w *Watcher) Close() {
	close(w.done)
	<-w.stopped
	w.h.Close()
	w.ns.Close()
}

// subscribe starts a subscription; closing stop ends it, after which
// netlink closes updates.
func (w *Watcher) subscribe() (updates chan netlink.LinkUpdate, stop chan struct{}, err error) {
	updates, stop = make(chan netlink.LinkUpdate, eventBuffer), make(chan struct{})
	err = netlink.LinkSubscribeWithOptions(updates, stop, netlink.LinkSubscribeOptions{
		Namespace:     &w.ns,
		ErrorCallback: func(err error) { w.log.Debug("link events", "err", err) },
	})
	return updates, stop, err
}

// run follows the subscription until Close, and subscribes again whenever
// it ends: each new subscription is signalled, since events may have been
// lost before it.
func (w *Watcher) run(updates chan netlink.LinkUpdate, stop chan struct{}) {
	defer close(w.stopped)
	for {
		w.follow(updates)
		close(stop)
		for range updates {
			// netlink's reader closes updates once it sees stop.
		}
		for {
			select {
			case <-w.done:
				return
			case <-time.After(resubscribeDelay):
			}
			var err error
			if updates, stop, err = w.subscribe(); err == nil {
				break
			}
			w.log.Warn("subscribe to link events again", "err", err)
		}
		w.invalidate(true)
	}
}

// follow handles events until the subscription ends or Close.
func (w *Watcher) follow(updates <-chan netlink.LinkUpdate) {
	for {
		select {
		case <-w.done:
			return
		case u, ok := <-updates:
			if !ok {
				w.log.Warn("link events subscription ended; subscribing again")
				return
			}
			// Any link's event makes the dump stale; only ours concern a
			// port. A deleted link's event still carries its alias.
			alias := u.Link.Attrs().Alias
			w.invalidate(strings.HasPrefix(alias, datapath.OwnerAlias) && alias != SpareAlias)
		}
	}
}

func (w *Watcher) invalidate(signal bool) {
	w.gen.Add(1)
	if signal {
		w.Signal()
	}
}

// Link returns the link called name, nil if there is none. With
// datapath.CheckAll it asks the kernel for that link. With
// datapath.CheckHost it reads a dump of the namespace's links shared with
// the other checks until it is stale: once it is minDumpAge old after a
// link event, since a bulk attach raises events all the time and a dump
// for each check of a round would make the round cost ports × links. A
// dump that predates an event signals Changed again, so that the event is
// looked at by a later round, with a dump that has it.
func (w *Watcher) Link(name string, depth datapath.CheckDepth) (netlink.Link, error) {
	if depth == datapath.CheckAll {
		l, err := w.h.LinkByName(name)
		if isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up link %s: %w", name, err)
		}
		return l, nil
	}
	w.dumpMu.Lock()
	defer w.dumpMu.Unlock()
	// Read before the dump: an event that overtakes it makes it stale.
	gen, age := w.gen.Load(), time.Since(w.linksAt)
	switch {
	case w.links == nil || age > linksMaxAge || w.linksGen != gen && age > minDumpAge:
		at := time.Now()
		all, err := List(w.h)
		if err != nil {
			w.links = nil
			return nil, fmt.Errorf("list links: %w", err)
		}
		w.links = make(map[string]netlink.Link, len(all))
		for _, l := range all {
			w.links[l.Attrs().Name] = l
		}
		w.linksGen, w.linksAt = gen, at
	case w.linksGen != gen:
		w.Signal()
	}
	return w.links[name], nil
}

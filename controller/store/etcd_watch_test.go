package store

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// nextEvent waits for the next event on a watch.
func nextEvent(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("watch closed")
		}
		return e
	case <-time.After(patience):
		t.Fatalf("no event within %v", patience)
	}
	return Event{}
}

func describe(e Event) string {
	obj := "deleted"
	switch {
	case e.Reset:
		return "reset"
	case e.Network != nil:
		obj = fmt.Sprintf("%s %s #%d", e.Network.Name, e.Network.Subnet, e.Network.ID)
		if e.Network.DNS != "" {
			obj += " dns " + string(e.Network.DNS)
		}
	case e.Router != nil:
		obj = fmt.Sprintf("%s %v", e.Router.Name, e.Router.Networks)
	case e.Port != nil:
		obj = fmt.Sprintf("%s %s on %s ofport %d", e.Port.Name, e.Port.IP, e.Port.Host, e.Port.Ofport)
	case e.Host != nil:
		obj = fmt.Sprintf("%s %s", e.Host.Name, e.Host.UnderlayIP)
	case e.SecurityGroup != nil:
		obj = fmt.Sprintf("%s #%d naming %v", e.SecurityGroup.Name, e.SecurityGroup.ID, e.SecurityGroup.References())
	case e.FloatingIP != nil:
		obj = fmt.Sprintf("%s to %s", e.FloatingIP.Address, e.FloatingIP.Port)
	case e.PortForward != nil:
		obj = fmt.Sprintf("%s to %s", e.PortForward, e.PortForward.Port)
	}
	return e.Kind + " " + e.Name + ": " + obj
}

// TestEtcdWatch: what one host writes, another sees, in order, one event
// per object change, with the store's bookkeeping (addresses, topology,
// security groups' references and group set) left out.
func TestEtcdWatch(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	prefix := uniquePrefix()
	a, _ := openEtcd(t, cluster, prefix)
	b, _ := openEtcd(t, cluster, prefix, func(c *EtcdConfig) { c.LeaseTTL = 2 * time.Second })
	ctx := t.Context()
	if _, _, err := a.CreateNetwork(ctx, network("old", "10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	st, err := a.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != 1 || st.Revision == 0 {
		t.Fatalf("load: %+v", st)
	}
	events := a.Watch(ctx, st.Revision+1)

	p := withGroups(port("p1", "blue", "10.1.0.5"), "db")
	p.Host = "h2"
	updated := p
	updated.Ofport = 3
	redDNS := withDNS(network("red", "10.2.0.0/24"), 3, false, "", "10.2.0.53")
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan error, 1)
	steps := []struct {
		do   func() error
		want []string
	}{
		{func() error { _, _, err := b.CreateNetwork(ctx, network("blue", "10.1.0.0/24")); return err },
			[]string{"network blue: blue 10.1.0.0/24 #2"}},
		{func() error { _, _, err := b.CreateNetwork(ctx, network("red", "10.2.0.0/24")); return err },
			[]string{"network red: red 10.2.0.0/24 #3"}},
		// In place: the same key written again is one put.
		{func() error { return errOf(b.UpdateNetwork(ctx, redDNS)) }, []string{"network red: red 10.2.0.0/24 #3 dns 10.2.0.53"}},
		{func() error { _, _, err := b.PutRouter(ctx, router("r1", 1, "blue", "red")); return err }, []string{"router r1: r1 [blue red]"}},
		{func() error { _, _, _, err := b.PutSecurityGroup(ctx, group("web")); return err }, []string{"security_group web: web #1 naming []"}},
		{func() error { _, _, _, err := b.PutSecurityGroup(ctx, group("db", "web")); return err }, []string{"security_group db: db #2 naming [web]"}},
		{func() error { return b.CreatePort(ctx, p) }, []string{"port p1: p1 10.1.0.5 on h2 ofport 0"}},
		{func() error { return b.UpdatePort(ctx, updated) }, []string{"port p1: p1 10.1.0.5 on h2 ofport 3"}},
		{func() error { return errOf(b.PutFloatingIP(ctx, fip("pub", "203.0.113.5", "p1"))) }, []string{"floating_ip pub: 203.0.113.5 to p1"}},
		{func() error { return errOf(b.PutPortForward(ctx, fwd("web", "tcp/8080", "p1"))) }, []string{"port_forward web: tcp/8080 to p1"}},
		{func() error { return errOf(b.DeletePortForward(ctx, "web")) }, []string{"port_forward web: deleted"}},
		{func() error { return errOf(b.PutPortForward(ctx, fwd("web", "tcp/8080", "p1"))) }, []string{"port_forward web: tcp/8080 to p1"}},
		// The port's delete takes its objects with it, in one revision.
		{func() error { return b.DeletePort(ctx, "p1", "h2") }, []string{"port p1: deleted", "floating_ip pub: deleted", "port_forward web: deleted"}},
		{func() error { return errOf(b.DeleteSecurityGroup(ctx, "db")) }, []string{"security_group db: deleted"}},
		{func() error { return errOf(b.DeleteRouter(ctx, "r1")) }, []string{"router r1: deleted"}},
		{func() error { return errOf(b.DeleteNetwork(ctx, "red")) }, []string{"network red: deleted"}},
		{func() error {
			go func() {
				regDone <- b.Register(regCtx, Host{Name: "h2", UnderlayIP: netip.MustParseAddr("192.0.2.2")}, nil)
			}()
			return nil
		}, []string{"host h2: h2 192.0.2.2"}},
		// Register returns without revoking: the record goes when the lease
		// runs out (2s TTL).
		{func() error { stopReg(); return <-regDone }, []string{"host h2: deleted"}},
	}
	last := st.Revision
	for i, s := range steps {
		start := time.Now()
		if err := s.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for j, want := range s.want {
			e := nextEvent(t, events)
			if got := describe(e); got != want {
				t.Fatalf("step %d: event %q, want %q", i, got, want)
			}
			// One step is one transaction: its events share a revision.
			if j == 0 && e.Revision <= last || j > 0 && e.Revision != last {
				t.Errorf("step %d: event %d at revision %d after %d", i, j, e.Revision, last)
			}
			last = e.Revision
		}
		if i == len(steps)-1 {
			t.Logf("host record gone %v after Register returned", time.Since(start).Round(10*time.Millisecond))
		}
	}
	select {
	case e := <-events:
		t.Errorf("unexpected event %s", describe(e))
	case <-time.After(100 * time.Millisecond):
	}
}

// TestEtcdWatchReset: a watch from a compacted revision says Reset and
// closes.
func TestEtcdWatchReset(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	s, _ := openEtcd(t, cluster, uniquePrefix())
	ctx := t.Context()
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := s.CreateNetwork(ctx, network("blue", "10.1.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	// Compact away the revision of the network's creation.
	cli := cluster.Client(t)
	resp, err := cli.Put(ctx, "/elsewhere", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	events := s.Watch(ctx, st.Revision+1)
	if e := nextEvent(t, events); !e.Reset {
		t.Fatalf("got %s, want reset", describe(e))
	}
	select {
	case e, ok := <-events:
		if ok {
			t.Fatalf("after reset: %s", describe(e))
		}
	case <-time.After(patience):
		t.Fatal("watch not closed after reset")
	}
	// Load and watch again: the network is there, the next change arrives.
	st, err = s.Load(ctx)
	if err != nil || len(st.Networks) != 1 || st.Networks[0] != n {
		t.Fatalf("load after reset: %+v %v", st, err)
	}
	events = s.Watch(ctx, st.Revision+1)
	if _, err := s.DeleteNetwork(ctx, "blue"); err != nil {
		t.Fatal(err)
	}
	if got := describe(nextEvent(t, events)); got != "network blue: deleted" {
		t.Fatalf("got %s", got)
	}
}

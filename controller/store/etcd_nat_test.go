package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestEtcdConcurrentNAT: hosts, each with its own client, race for one
// host port of one host, one floating address, and a port being deleted
// while forwards to it are stored. Exactly one claim wins each, and no
// object outlives its port.
func TestEtcdConcurrentNAT(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartEtcd(t, 1)
	hosts := openHosts(t, cluster, 3)
	ctx := t.Context()
	if _, _, err := hosts[0].CreateNetwork(ctx, network("blue", "10.1.0.0/24")); err != nil {
		t.Fatal(err)
	}
	const n = 12
	for i := range n {
		if err := hosts[0].CreatePort(ctx, port(fmt.Sprintf("p%d", i), "blue", fmt.Sprintf("10.1.0.%d", 10+i))); err != nil {
			t.Fatal(err)
		}
	}
	race := func(what string, claim func(s *Etcd, i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range n {
			wg.Go(func() {
				err := claim(hosts[i%len(hosts)], i)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case !errors.Is(err, ErrConflict):
					t.Errorf("%s %d: %v (want success or ErrConflict)", what, i, err)
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Errorf("%s: %d of %d claims won, want 1", what, won, n)
		}
	}
	race("tcp/8080 of h1", func(s *Etcd, i int) error {
		return errOf(s.PutPortForward(ctx, fwd(fmt.Sprintf("web%d", i), "tcp/8080", fmt.Sprintf("p%d", i))))
	})
	race("floating address 203.0.113.5", func(s *Etcd, i int) error {
		return errOf(s.PutFloatingIP(ctx, fip(fmt.Sprintf("pub%d", i), "203.0.113.5", fmt.Sprintf("p%d", i))))
	})

	// Forwards to a port stored while it is deleted: each is refused
	// (404) or deleted with it.
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := hosts[i%len(hosts)].PutPortForward(ctx, fwd(fmt.Sprintf("dns%d", i), fmt.Sprintf("udp/%d", 5300+i), "p0"))
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Errorf("forward %d: %v", i, err)
			}
		})
	}
	wg.Go(func() {
		if err := hosts[1].DeletePort(ctx, "p0", "h1"); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	st, err := hosts[2].Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range st.PortForwards {
		if f.Port == "p0" {
			t.Errorf("forward %s outlived its port p0", f.Name)
		}
	}
	for _, f := range st.FloatingIPs {
		if f.Port == "p0" {
			t.Errorf("floating IP %s outlived its port p0", f.Name)
		}
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentPuts (issue 6, Must 5): 200 PUT /v1/ports at once against
// the race-enabled daemon — 100 distinct veth ports in 100 namespaces, 50
// PUTs of 10 names with different specs, and 50 PUTs of 10 addresses under
// different names — give exactly one winner per name and per address, unique
// addresses, no trace of the losers, and, once the winners are deleted, a
// pool whose every address can be handed out again.
func TestConcurrentPuts(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			hostNS := newNetns(t, "vnt-conc-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			// A /25: 125 usable addresses, 120 of which the winners take.
			d.must("PUT", "/v1/networks/conc", `{"subnet":"10.74.0.0/25"}`, 201, nil)

			type req struct {
				name  string
				spec  map[string]string
				group string // "distinct", "name:<name>" or "ip:<address>"
				code  int
				body  []byte
			}
			var reqs []*req
			for i := range 100 {
				ns := newNetns(t, "vnt-cc-")
				reqs = append(reqs, &req{name: fmt.Sprintf("d%02d", i), spec: map[string]string{"network": "conc", "netns": ns}, group: "distinct"})
			}
			for i := range 10 {
				for k := range 5 {
					// Variants 0 and 4 are the same spec: the one that does not
					// win is answered 200 if its twin won, 409 otherwise.
					name := fmt.Sprintf("n%d", i)
					spec := map[string]string{"network": "conc", "type": "tap", "ifname": fmt.Sprintf("vntcn%d-%d", i, k%4)}
					reqs = append(reqs, &req{name: name, spec: spec, group: "name:" + name})
				}
			}
			for i := range 10 {
				ip := fmt.Sprintf("10.74.0.%d", 117+i)
				for k := range 5 {
					spec := map[string]string{"network": "conc", "type": "tap", "ip": ip}
					reqs = append(reqs, &req{name: fmt.Sprintf("ip%d-%d", i, k), spec: spec, group: "ip:" + ip})
				}
			}
			rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })

			var wg sync.WaitGroup
			gate := make(chan struct{})
			for _, r := range reqs {
				wg.Go(func() {
					<-gate
					r.code, r.body = d.do("PUT", "/v1/ports/"+r.name, r.spec)
				})
			}
			close(gate)
			wg.Wait()
			t.Logf("%d concurrent PUTs answered in %v", len(reqs), time.Since(start).Round(time.Millisecond))

			// One winner per group ("distinct": every one wins).
			winners := map[string]*req{} // by port name
			byGroup := map[string][]*req{}
			for _, r := range reqs {
				byGroup[r.group] = append(byGroup[r.group], r)
			}
			for g, rs := range byGroup {
				var won []*req
				for _, r := range rs {
					if r.code == 201 {
						won = append(won, r)
						winners[r.name] = r
					}
				}
				if g == "distinct" {
					if len(won) != len(rs) {
						t.Errorf("distinct ports: %d of %d created", len(won), len(rs))
					}
					continue
				}
				if len(won) != 1 {
					t.Errorf("group %s: %d winners, want 1", g, len(won))
					continue
				}
				for _, r := range rs {
					switch {
					case r == won[0]:
					case r.code == 409:
					case r.code == 200 && maps.Equal(r.spec, won[0].spec):
					default:
						t.Errorf("group %s: PUT %s %v answered %d %s (winner %v)", g, r.name, r.spec, r.code, r.body, won[0].spec)
					}
				}
			}
			for _, r := range reqs {
				if r.code != 201 && r.code != 200 && r.code != 409 {
					t.Errorf("PUT %s: %d %s", r.name, r.code, r.body)
				}
			}

			// The API holds exactly the winners, as they won, with unique addresses.
			var list struct{ Ports []portView }
			d.must("GET", "/v1/ports?network=conc", nil, 200, &list)
			ips := map[string]string{}
			hostIfs := map[string]bool{}
			for _, p := range list.Ports {
				w, ok := winners[p.Name]
				if !ok {
					t.Errorf("port %s is listed but won no PUT", p.Name)
					continue
				}
				var created portView
				if err := json.Unmarshal(w.body, &created); err != nil || !reflect.DeepEqual(created, p) {
					t.Errorf("port %s: listed %+v, created %+v (%v)", p.Name, p, created, err)
				}
				if other, dup := ips[p.IP]; dup {
					t.Errorf("address %s given to %s and %s", p.IP, other, p.Name)
				}
				ips[p.IP] = p.Name
				hostIfs[p.HostIfname] = true
			}
			if len(list.Ports) != len(winners) || len(winners) != 120 {
				t.Fatalf("%d ports listed, %d winners, want 120", len(list.Ports), len(winners))
			}

			// Nothing of the losers on the host: the links and OVS ports are the winners'.
			ours := map[string]bool{}
			for _, l := range linksIn(t, hostNS) {
				a := l.Attrs()
				if strings.HasPrefix(a.Alias, "ovs-vnet:port=") || strings.HasPrefix(a.Name, "vntcn") {
					ours[a.Name] = true
				}
			}
			if !maps.Equal(ours, hostIfs) {
				t.Errorf("host links %v, want the winners' %v", slices.Sorted(maps.Keys(ours)), slices.Sorted(maps.Keys(hostIfs)))
			}
			if box != nil {
				ports := bridgePorts(t, box, hostNS)
				if !slices.Equal(ports, slices.Sorted(maps.Keys(hostIfs))) {
					t.Errorf("OVS ports %v, want the winners' host links", ports)
				}
			}

			deleteAll := func(names []string) {
				var wg sync.WaitGroup
				for _, name := range names {
					wg.Go(func() {
						if code, body := d.do("DELETE", "/v1/ports/"+name, nil); code != 204 {
							t.Errorf("DELETE %s: %d %s", name, code, body)
						}
					})
				}
				wg.Wait()
			}
			deleteAll(slices.Collect(maps.Keys(winners)))

			// Every address is free again: 125 allocations succeed, the 126th finds none.
			var fill []string
			var mu sync.Mutex
			for i := range 125 {
				fill = append(fill, fmt.Sprintf("f%03d", i))
			}
			got := map[string]bool{}
			for _, name := range fill {
				wg.Go(func() {
					var p portView
					code, body := d.do("PUT", "/v1/ports/"+name, `{"network":"conc","type":"tap"}`)
					if code != 201 || json.Unmarshal(body, &p) != nil {
						t.Errorf("PUT %s after the delete: %d %s", name, code, body)
						return
					}
					mu.Lock()
					got[p.IP] = true
					mu.Unlock()
				})
			}
			wg.Wait()
			if len(got) != 125 {
				t.Errorf("%d distinct addresses allocated, want 125", len(got))
			}
			d.must("PUT", "/v1/ports/full", `{"network":"conc","type":"tap"}`, 409, nil)
			deleteAll(fill)
			d.must("DELETE", "/v1/networks/conc", nil, 204, nil)
			d.stop()
			if strings.Contains(d.log.String(), "DATA RACE") {
				t.Errorf("the race detector reported a race:\n%s", d.log)
			}
			assertNothingLeft(t, hostNS, box, d.stateDir)
			t.Logf("took %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

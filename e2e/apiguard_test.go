package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestAPIGuard: the default listener (loopback, no token) answers only
// requests addressed to a loopback name or address, or to a name given with
// --allowed-hosts, and only pages of such hosts (Origin); a web page that
// re-points its own name at 127.0.0.1 (DNS rebinding) gets a JSON 403 and
// changes nothing. The probes answer whatever the Host. Both backends, as
// the guard stands before either.
func TestAPIGuard(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-guard-")
			args, _ := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, append(args, "--allowed-hosts", "vnet.test")...)
			for _, c := range []struct {
				method, path, host, origin string
				want                       int
			}{
				{"GET", "/v1/networks", "127.0.0.1:9476", "", 200},
				{"GET", "/v1/networks", "127.0.0.1", "", 200},
				{"GET", "/v1/networks", "localhost:9476", "", 200},
				{"GET", "/v1/networks", "localhost", "", 200},
				{"GET", "/v1/networks", "[::1]:9476", "", 200},
				{"GET", "/v1/networks", "[::1]", "", 200},
				{"GET", "/v1/info", "vnet.test:9476", "", 200},
				{"GET", "/metrics", "localhost:9476", "", 200},
				{"GET", "/v1/networks", "127.0.0.1:9476", "http://localhost:9476", 200},
				{"GET", "/v1/networks", "evil.example:9476", "", 403},
				{"GET", "/v1/networks", "evil.example", "", 403},
				{"GET", "/metrics", "evil.example:9476", "", 403},
				{"GET", "/v1/info", "localhost.evil.example:9476", "", 403},
				{"PUT", "/v1/networks/evil", "evil.example:9476", "http://evil.example:9476", 403},
				{"PUT", "/v1/networks/evil", "127.0.0.1:9476", "http://evil.example:9476", 403},
				{"PUT", "/v1/networks/evil", "127.0.0.1:9476", "null", 403},
				{"DELETE", "/v1/networks/evil", "evil.example:9476", "", 403},
				{"GET", "/healthz", "evil.example:9476", "", 200},
				{"GET", "/readyz", "10.1.2.3:9476", "http://evil.example", 200},
			} {
				code, body := guardedDo(t, d, c.method, c.path, c.host, c.origin, `{"subnet":"10.84.0.0/24"}`)
				if code != c.want {
					t.Errorf("%s %s Host %q Origin %q: %d, want %d: %s", c.method, c.path, c.host, c.origin, code, c.want, body)
					continue
				}
				var e map[string]string
				if c.want == 403 && (json.Unmarshal(body, &e) != nil || !strings.Contains(e["error"], "not allowed")) {
					t.Errorf("%s %s Host %q Origin %q: %s, want a JSON error", c.method, c.path, c.host, c.origin, body)
				}
			}
			d.must("GET", "/v1/networks/evil", nil, 404, nil)
			// Our own clients' way in is unchanged; a loopback page may write.
			if code, body := guardedDo(t, d, "PUT", "/v1/networks/good", "localhost:9476", "http://localhost:9476", `{"subnet":"10.85.0.0/24"}`); code != 201 {
				t.Fatalf("PUT from a loopback origin: %d %s", code, body)
			}
			d.must("DELETE", "/v1/networks/good", nil, 204, nil)
		})
	}
}

// guardedDo sends a request with the given Host and, unless empty, Origin.
func guardedDo(t *testing.T, d *daemon, method, path, host, origin, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, d.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestSpecialSubnets: subnets in or around the special-purpose IPv4 ranges
// are refused with 400 and a hint, and nothing is created; a subnet that
// holds an address of the host's, or overlaps one of its routes, is refused
// with 409 naming it wherever the network would have a host side (every
// network on Linux, a masquerading one on OVS), and neither the store, the
// host's routes nor its nftables change.
func TestSpecialSubnets(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-sub-")
			args, _ := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			for _, subnet := range []string{"127.0.0.0/8", "127.0.0.0/16", "0.0.0.0/8", "0.0.0.0/24", "169.254.0.0/16",
				"169.0.0.0/8", "224.0.0.0/24", "239.1.0.0/16", "240.0.0.0/8", "255.255.255.252/30"} {
				for _, masq := range []bool{true, false} {
					code, body := d.do("PUT", "/v1/networks/special", map[string]any{"subnet": subnet, "masquerade": masq})
					if code != 400 || !strings.Contains(string(body), "pick a private range such as 10.0.0.0/8") {
						t.Errorf("subnet %s masquerade %v: %d %s, want 400 with a hint", subnet, masq, code, body)
					}
				}
			}
			d.must("GET", "/v1/networks/special", nil, 404, nil)
			// The daemon's own loopback traffic is untouched: its API answers.
			d.must("GET", "/readyz", nil, 200, nil)

			// The host has an uplink with an address and a route beyond it.
			for _, cmd := range [][]string{
				{"link", "add", "vnt-up", "type", "veth", "peer", "name", "vnt-up-p"},
				{"addr", "add", "10.93.0.5/24", "dev", "vnt-up"},
				{"link", "set", "vnt-up", "up"},
				{"link", "set", "vnt-up-p", "up"},
				{"route", "add", "10.94.0.0/16", "via", "10.93.0.1"},
			} {
				testbed.Run(t, "ip", append([]string{"-n", hostNS}, cmd...)...)
			}
			routes := testbed.Run(t, "ip", "-4", "-n", hostNS, "route", "show", "table", "all")
			ruleset := testbed.Run(t, "ip", "netns", "exec", hostNS, "nft", "list", "ruleset")
			for _, c := range []struct {
				subnet string
				masq   bool
				want   string
			}{
				{"10.93.0.0/24", true, "the host's own address 10.93.0.5/24 on vnt-up"},
				{"10.93.0.0/16", true, "the host's own address 10.93.0.5/24 on vnt-up"},
				{"10.94.7.0/24", true, "route 10.94.0.0/16 via 10.93.0.1 dev vnt-up"},
				{"10.93.0.0/24", false, "the host's own address 10.93.0.5/24 on vnt-up"},
			} {
				// Every network has a host route now, on OVS too (forwards and
				// floating IPs reach any network through the host), so a
				// clash is refused with or without masquerade.
				code, body := d.do("PUT", "/v1/networks/clash", map[string]any{"subnet": c.subnet, "masquerade": c.masq})
				if code != 409 || !strings.Contains(string(body), c.want) {
					t.Errorf("subnet %s masquerade %v: %d %s, want 409 naming %q", c.subnet, c.masq, code, body, c.want)
				}
				d.must("GET", "/v1/networks/clash", nil, 404, nil)
			}
			if now := testbed.Run(t, "ip", "-4", "-n", hostNS, "route", "show", "table", "all"); now != routes {
				t.Errorf("a refused network changed the host's routes:\n%s\nnow:\n%s", routes, now)
			}
			if now := testbed.Run(t, "ip", "netns", "exec", hostNS, "nft", "list", "ruleset"); now != ruleset {
				t.Errorf("a refused network changed the host's nftables:\n%s\nnow:\n%s", ruleset, now)
			}
			// A subnet the host does not use is fine, and so is its PUT again
			// (its own host route does not count against it).
			d.must("PUT", "/v1/networks/free", `{"subnet":"10.95.0.0/24","masquerade":true}`, 201, nil)
			d.must("PUT", "/v1/networks/free", `{"subnet":"10.95.0.0/24","masquerade":true}`, 200, nil)
			var list struct{ Networks []struct{ Name string } }
			d.must("GET", "/v1/networks", nil, 200, &list)
			if len(list.Networks) != 1 {
				t.Errorf("networks %+v, want only free", list.Networks)
			}
		})
	}
}

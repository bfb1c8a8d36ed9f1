package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/httpapi"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// These tests hold the daemon's answers to docs/openapi.yaml: the statuses,
// headers and bodies it gives, and the request rules it applies. The spec's
// own checks and the schema validator are in openapi_test.go.

// apiCall is one request of TestOpenAPIAnswers and the status it must get,
// so that each case keeps testing what it was written for.
type apiCall struct {
	method, path, body string
	want               int
	// beyondSpec says why the server refuses (400) a body the spec allows:
	// a rule about other objects or the host, or one no schema states.
	beyondSpec string
}

// answers sends requests and holds every answer to the spec.
type answers struct {
	t    *testing.T
	s    *openAPI
	ops  map[string]map[string]any
	vars *strings.Replacer // fills $NS into request bodies
	seen map[string]bool   // "METHOD /path/{name} status" answered
	host string            // the Host header to send, when not the URL's
}

// route is the spec's operation for a request, and its path parameters.
func (a *answers) route(method, path string) (string, map[string]string) {
	path, _, _ = strings.Cut(path, "?")
	segs := strings.Split(path, "/")
	for key := range a.ops {
		m, tmpl, _ := strings.Cut(key, " ")
		ts := strings.Split(tmpl, "/")
		if m != method || len(ts) != len(segs) {
			continue
		}
		params := map[string]string{}
		for i, seg := range ts {
			if strings.HasPrefix(seg, "{") {
				params[strings.Trim(seg, "{}")] = segs[i]
			} else if seg != segs[i] {
				params = nil
				break
			}
		}
		if params != nil {
			return key, params
		}
	}
	return method + " " + path, nil
}

func (a *answers) send(url, token string, c apiCall) int {
	t := a.t
	t.Helper()
	body := a.vars.Replace(c.body)
	req, _ := http.NewRequest(c.method, url+c.path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if a.host != "" {
		req.Host = a.host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	key, params := a.route(c.method, c.path)
	var short bytes.Buffer // the server indents its JSON
	if json.Compact(&short, got) != nil {
		short.Write(got)
	}
	desc := fmt.Sprintf("%s %s %.70s → %d %.200s", c.method, c.path, body, resp.StatusCode, short.Bytes())
	if a.ops[key] == nil {
		t.Fatalf("%s: no operation of the spec serves this request", desc)
	}
	if c.want != 0 && resp.StatusCode != c.want {
		t.Errorf("%s: want %d", desc, c.want)
	}
	a.seen[fmt.Sprint(key, " ", resp.StatusCode)] = true
	if err := a.checkAnswer(key, resp, got); err != nil {
		t.Errorf("%s: %v", desc, err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return resp.StatusCode // the spec's rules for the request do not come into it
	}
	// A name the spec refuses is an object that cannot exist: 404 on a GET
	// or DELETE is as right as 400 on a PUT.
	paramErr, bodyErr := a.checkRequest(key, params, body)
	specErr, refusals := bodyErr, []int{400, 413}
	if paramErr != nil {
		specErr, refusals = paramErr, []int{400, 404}
	}
	switch code := resp.StatusCode; {
	case specErr != nil && !slices.Contains(refusals, code):
		t.Errorf("%s: the spec refuses this request (%v), the server does not: the spec is stricter than the server", desc, specErr)
	case specErr == nil && code == 400 && c.beyondSpec == "" && json.Valid([]byte(body)):
		t.Errorf("%s: the server refuses this request, the spec allows it: state the rule in the spec, or give the case a beyondSpec reason", desc)
	case specErr != nil && c.beyondSpec != "":
		t.Errorf("%s: the spec refuses this request (%v) after all; drop the case's beyondSpec", desc, specErr)
	}
	return resp.StatusCode
}

// checkAnswer: the status is one the operation lists, with its headers, its
// media type and a body that fits its schema, property for property.
func (a *answers) checkAnswer(key string, resp *http.Response, body []byte) error {
	r, ok, err := a.s.response(a.ops[key], strconv.Itoa(resp.StatusCode), key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s does not list status %d for %s", specFile, resp.StatusCode, key)
	}
	headers, _ := r["headers"].(map[string]any)
	for name := range headers {
		if resp.Header.Get(name) == "" {
			return fmt.Errorf("the spec promises a %s header; the answer has none", name)
		}
	}
	content, _ := r["content"].(map[string]any)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	media, _ := content[mt].(map[string]any)
	switch {
	case len(content) == 0 && len(body) > 0:
		return errors.New("the spec says this answer has no body")
	case len(content) == 0:
		return nil
	case media == nil:
		return fmt.Errorf("answered %q; the spec lists %v", mt, slices.Sorted(maps.Keys(content)))
	case mt != "application/json":
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("the answer is not JSON: %v", err)
	}
	return a.s.validate(media["schema"], v, fmt.Sprintf("answer %d of %s", resp.StatusCode, key), true)
}

// checkRequest holds a request's path parameters and body to the spec.
func (a *answers) checkRequest(key string, params map[string]string, body string) (paramErr, bodyErr error) {
	defs, err := a.s.params(key)
	if err != nil {
		return err, nil
	}
	for name, val := range params {
		if err := a.s.validate(defs[name]["schema"], val, "path parameter "+name, false); err != nil {
			return err, nil
		}
	}
	rb, _ := a.s.deref(a.ops[key]["requestBody"], key)
	var v any
	if rb == nil || json.Unmarshal([]byte(body), &v) != nil {
		return nil, nil // nothing to hold, or not JSON, which no schema speaks of
	}
	media := rb["content"].(map[string]any)["application/json"].(map[string]any)
	return nil, a.s.validate(media["schema"], v, key+" body", false)
}

// notReadyServer serves a controller that has not connected a backend, over
// a stored network, router and port, with a gatherer that fails: the
// answers only a daemon in trouble gives.
func notReadyServer(t *testing.T) string {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var errs []error
	for i, name := range []string{"blue", "red", "green"} {
		n, err := model.NewNetwork(name, v1.NetworkSpec{Subnet: fmt.Sprintf("10.%d.0.0/24", i+1)})
		n.ID = i + 1
		errs = append(errs, err, controllertest.CreateNetwork(st, n))
	}
	p, err := model.NewPort("p1", v1.PortSpec{Network: "blue", Type: v1.PortTap, IP: "10.1.0.7"})
	p.MAC = model.PortMAC("p1")
	errs = append(errs, err, st.CreatePort(context.Background(), p), controllertest.PutRouter(st, model.Router{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}))
	_, _, _, err = st.PutSecurityGroup(context.Background(), model.SecurityGroup{Name: "web", Rules: []model.Rule{}})
	errs = append(errs, err, putNAT(st, "p1"))
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(st, "h1", slog.New(slog.NewTextHandler(io.Discard, nil)), controller.NewMetrics(prometheus.NewRegistry(), "test"))
	if err != nil {
		t.Fatal(err)
	}
	broken := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, errors.New("collector failed") })
	srv := httptest.NewServer(httpapi.NewHandler(c, broken, "test", ""))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestOpenAPIAnswers sends requests that cover every status the spec lists,
// against a controller on the fake backend: each answer must be listed and
// fit its schema, and each listed status must be answered by some request.
func TestOpenAPIAnswers(t *testing.T) {
	s := loadSpec(t)
	a := &answers{t: t, s: s, ops: s.operations(t), vars: strings.NewReplacer("$NS", t.TempDir()), seen: map[string]bool{}}
	f := controllertest.NewFixture(t)
	big := `{"subnet":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`
	for _, c := range []apiCall{
		{"GET", "/healthz", "", 200, ""},
		{"GET", "/readyz", "", 200, ""},
		{"GET", "/metrics", "", 200, ""},
		{"GET", "/v1/info", "", 200, ""},
		{"GET", "/v1/networks", "", 200, ""},
		{"PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24"}`, 201, ""},
		{"PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24","gateway":"10.1.0.1","mtu":1500}`, 200, ""},
		{"PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24","mtu":9000}`, 409, ""},
		{"PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24","dns":["10.1.0.53","9.9.9.9"],"domain":"lab.example"}`, 200, ""},
		{"PUT", "/v1/networks/red", `{"subnet":"10.2.0.0/16","gateway":"10.2.255.254","mtu":576,"masquerade":true}`, 201, ""},
		{"PUT", "/v1/networks/spare", `{"subnet":"10.3.0.0/30"}`, 201, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.1.0.128/25"}`, 409, ""},
		{"PUT", "/v1/networks/Blue", `{"subnet":"10.4.0.0/24"}`, 400, ""},
		{"PUT", "/v1/networks/x", ``, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/24"} {}`, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/24","vlan":3}`, 400, ""},
		{"PUT", "/v1/networks/x", `{}`, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/24","mtu":575}`, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/24","mtu":9001}`, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/7"}`, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/31"}`, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"fd00::/64"}`, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/24","masquerade":"yes"}`, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/24","gateway":"10.4.0.1/24"}`, 400, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.1/24"}`, 400, "host bits set: a pattern does no arithmetic"},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/24","gateway":"10.5.0.1"}`, 400, "the gateway must lie in the subnet"},
		{"PUT", "/v1/networks/x", big, 413, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/24"}` + strings.Repeat(" ", 10<<20), 413, ""},
		{"PUT", "/v1/networks/x", `{"subnet":"10.4.0.0/24","subnet":"10.4.0.0/24"}`, 400, "a key given twice: a schema sees the object with its keys merged"},
		{"PUT", "/v1/networks/x", `{"Subnet":"10.4.0.0/24"}`, 400, ""},
		{"GET", "/v1/networks", "", 200, ""},
		{"GET", "/v1/networks/blue", "", 200, ""},
		{"GET", "/v1/networks/nope", "", 404, ""},
		{"GET", "/v1/networks/Blue", "", 404, ""},

		{"PUT", "/v1/ports/p1", `{"network":"blue","netns":"$NS"}`, 201, ""},
		{"PUT", "/v1/ports/p1", `{"network":"blue","netns":"$NS","ifname":"eth0"}`, 200, ""},
		{"PUT", "/v1/ports/p1", `{"network":"blue","netns":"$NS","configure":false}`, 200, ""},
		{"PUT", "/v1/ports/p1", `{"network":"blue","netns":"$NS","ifname":"eth1"}`, 409, ""},
		{"PUT", "/v1/ports/p2", `{"network":"blue","type":"tap","ip":"10.1.0.200","mac":"02:00:00:00:00:02"}`, 201, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"tap","ip":"10.1.0.200"}`, 409, ""},
		{"PUT", "/v1/ports/p3", `{"network":"nope","type":"tap"}`, 404, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue"}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"tap","netns":"web1"}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"vhost","netns":"$NS"}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","netns":"$NS","ifname":"a/b"}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","netns":"$NS","ifname":"sixteen-chars-xx"}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","netns":"$NS","ifname":".."}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","netns":".."}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"tap","default_route":true}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"tap","configure":false}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","netns":"$NS","configure":false,"default_route":true}`, 400, "a rule between two fields"},
		{"PUT", "/v1/ports/p6", `{"network":"blue","netns":"$NS","ifname":"eth6","default_route":true}`, 201, ""},
		{"PUT", "/v1/ports/p6", `{"network":"blue","netns":"$NS","ifname":"eth6"}`, 409, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"tap","ip":"10.1.0.5/24"}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"tap","ofport":3}`, 400, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","netns":"no-such-netns-ovs-vnet"}`, 400, "the namespace must exist"},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"tap","ip":"10.1.0.1"}`, 400, "the ip must not be the network's gateway"},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"tap","mac":"01:00:00:00:00:01"}`, 400, "a multicast MAC: the forms net.ParseMAC takes are too many for a pattern"},
		{"PUT", "/v1/ports/p3", big, 413, ""},
		{"PUT", "/v1/ports/p3", `{"network":"blue","type":"tap","mac":"` + model.BridgeMAC("red") + `"}`, 400, "another network's gateway MAC: a rule about other objects"},
		{"GET", "/v1/ports", "", 200, ""},
		{"GET", "/v1/ports?network=blue", "", 200, ""},
		{"GET", "/v1/ports?network=nope", "", 404, ""},
		{"GET", "/v1/ports?netwrok=blue", "", 400, ""},
		{"GET", "/v1/ports?host=h1", "", 200, ""},
		{"GET", "/v1/hosts", "", 200, ""},
		{"GET", "/v1/ports/p1", "", 200, ""},
		{"GET", "/v1/ports/p2", "", 200, ""},
		{"GET", "/v1/ports/nope", "", 404, ""},

		{"PUT", "/v1/routers/r1", `{"networks":["red","blue"]}`, 201, ""},
		{"PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 200, ""},
		{"PUT", "/v1/routers/r2", `{"networks":["blue","red","spare"]}`, 201, ""},
		{"PUT", "/v1/routers/r2", `{"networks":["blue","red"]}`, 200, ""},
		{"PUT", "/v1/routers/r3", `{"networks":["blue"]}`, 400, ""},
		{"PUT", "/v1/routers/r3", `{"networks":["blue","blue"]}`, 400, ""},
		{"PUT", "/v1/routers/r3", `{"networks":["blue","Red"]}`, 400, ""},
		{"PUT", "/v1/routers/r3", `{}`, 400, ""},
		{"PUT", "/v1/routers/r3", `{"networks":["blue","nope"]}`, 404, ""},
		{"PUT", "/v1/routers/r3", big, 413, ""},
		{"GET", "/v1/routers", "", 200, ""},
		{"GET", "/v1/routers/r1", "", 200, ""},
		{"GET", "/v1/routers/nope", "", 404, ""},

		{"GET", "/v1/security-groups", "", 200, ""},
		{"PUT", "/v1/security-groups/web", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"80"}]}`, 201, ""},
		{"PUT", "/v1/security-groups/web", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"80"}]}`, 200, ""},
		{"PUT", "/v1/security-groups/db", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"5432","remote_group":"web"},{"direction":"egress","remote":"10.0.0.0/8"}]}`, 201, ""},
		{"PUT", "/v1/security-groups/db", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"5432-5433","remote_group":"web"}]}`, 200, ""},
		{"PUT", "/v1/security-groups/spare", `{"rules":[]}`, 201, ""},
		{"PUT", "/v1/security-groups/x", `{"rules":[{"direction":"ingress","remote_group":"nope"}]}`, 404, ""},
		{"PUT", "/v1/security-groups/x", `{}`, 400, ""},
		{"PUT", "/v1/security-groups/x", `{"rules":[{"direction":"sideways"}]}`, 400, ""},
		{"PUT", "/v1/security-groups/x", `{"rules":[{"direction":"ingress","protocol":"icmp","ports":"80"}]}`, 400, "ports with icmp: a rule across fields"},
		{"PUT", "/v1/security-groups/x", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"90-80"}]}`, 400, "a range N-M with N > M: a pattern does no arithmetic"},
		{"PUT", "/v1/security-groups/x", `{"rules":[{"direction":"ingress","remote":"10.0.0.0/8","remote_group":"web"}]}`, 400, "remote and remote_group exclude each other: a rule across fields"},
		{"PUT", "/v1/security-groups/X", `{"rules":[]}`, 400, ""},
		{"PUT", "/v1/security-groups/x", big, 413, ""},
		{"PUT", "/v1/ports/p4", `{"network":"blue","type":"tap","security_groups":["web"]}`, 201, ""},
		{"PUT", "/v1/ports/p4", `{"network":"blue","type":"tap","security_groups":["web","db"]}`, 200, ""},
		{"PUT", "/v1/ports/p5", `{"network":"blue","type":"tap","security_groups":["nope"]}`, 404, ""},
		{"GET", "/v1/security-groups", "", 200, ""},
		{"GET", "/v1/security-groups/web", "", 200, ""},
		{"GET", "/v1/security-groups/web?stats=true", "", 200, ""},
		{"GET", "/v1/security-groups/web?stats=maybe", "", 400, ""},
		{"GET", "/v1/security-groups/nope", "", 404, ""},
		{"DELETE", "/v1/security-groups/web", "", 409, ""},
		{"DELETE", "/v1/security-groups/spare", "", 204, ""},
		{"DELETE", "/v1/security-groups/spare", "", 404, ""},

		{"GET", "/v1/floating-ips", "", 200, ""},
		{"PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"p1"}`, 201, ""},
		{"PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"p1"}`, 200, ""},
		{"PUT", "/v1/floating-ips/keep", `{"address":"203.0.113.5","port":"p2"}`, 409, ""},
		{"PUT", "/v1/floating-ips/keep", `{"address":"203.0.113.6","port":"nope"}`, 404, ""},
		{"PUT", "/v1/floating-ips/keep", `{"address":"127.0.0.1","port":"p2"}`, 400, "a loopback address: a pattern does not tell ranges apart"},
		{"PUT", "/v1/floating-ips/keep", `{"address":"203.0.113.6"}`, 400, ""},
		{"PUT", "/v1/floating-ips/Keep", `{"address":"203.0.113.6","port":"p2"}`, 400, ""},
		{"PUT", "/v1/floating-ips/keep", big, 413, ""},
		{"PUT", "/v1/floating-ips/keep", `{"address":"203.0.113.6","port":"p4"}`, 201, ""},
		{"GET", "/v1/floating-ips?port=p1", "", 200, ""},
		{"GET", "/v1/floating-ips?port=nope", "", 404, ""},
		{"GET", "/v1/floating-ips?prot=p1", "", 400, ""},
		{"GET", "/v1/floating-ips/pub", "", 200, ""},
		{"GET", "/v1/floating-ips/pub?stats=true", "", 200, ""},
		{"GET", "/v1/floating-ips/pub?stats=maybe", "", 400, ""},
		{"GET", "/v1/floating-ips/nope", "", 404, ""},
		{"DELETE", "/v1/floating-ips/pub", "", 204, ""},
		{"DELETE", "/v1/floating-ips/pub", "", 404, ""},
		{"GET", "/v1/port-forwards", "", 200, ""},
		{"PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"p1","target_port":80}`, 201, ""},
		{"PUT", "/v1/port-forwards/web", `{"protocol":"tcp","host_port":8080,"port":"p1","target_port":80}`, 200, ""},
		{"PUT", "/v1/port-forwards/keep", `{"host_port":8080,"port":"p2","host_ip":"192.0.2.9"}`, 409, ""},
		{"PUT", "/v1/port-forwards/keep", `{"host_port":8080,"port":"nope"}`, 404, ""},
		{"PUT", "/v1/port-forwards/keep", `{"host_port":0,"port":"p2"}`, 400, ""},
		{"PUT", "/v1/port-forwards/keep", `{"protocol":"sctp","host_port":53,"port":"p2"}`, 400, ""},
		{"PUT", "/v1/port-forwards/keep", `{"host_port":53,"port":"p2","host_ip":"224.0.0.1"}`, 400, "a multicast host_ip: a pattern does not tell ranges apart"},
		{"PUT", "/v1/port-forwards/keep", big, 413, ""},
		{"PUT", "/v1/port-forwards/keep", `{"protocol":"udp","host_port":53,"port":"p4","host_ip":"192.0.2.9"}`, 201, ""},
		{"GET", "/v1/port-forwards?port=p1", "", 200, ""},
		{"GET", "/v1/port-forwards?port=nope", "", 404, ""},
		{"GET", "/v1/port-forwards?port=p1&port=p2", "", 400, ""},
		{"GET", "/v1/port-forwards/web", "", 200, ""},
		{"GET", "/v1/port-forwards/web?stats=true", "", 200, ""},
		{"GET", "/v1/port-forwards/web?stats=2", "", 400, ""},
		{"GET", "/v1/port-forwards/nope", "", 404, ""},
		{"DELETE", "/v1/port-forwards/web", "", 204, ""},
		{"DELETE", "/v1/port-forwards/web", "", 404, ""},

		// The fake traces; it has no flows, as the Linux backend.
		{"GET", "/v1/trace?from=p1&to=10.1.0.200", "", 200, ""},
		{"GET", "/v1/trace?from=p1&to=10.1.0.200&proto=tcp&dport=80&src=10.1.0.9&src_mac=02:00:00:00:00:09", "", 200, ""},
		{"GET", "/v1/trace?from=nope&to=10.1.0.200", "", 404, ""},
		{"GET", "/v1/trace?from_address=198.51.100.2&to=203.0.113.6", "", 200, ""},
		{"GET", "/v1/trace?from=p1&from_address=198.51.100.2&to=203.0.113.6", "", 400, "from and from_address exclude each other: a rule across parameters"},
		{"GET", "/v1/trace?from=p1", "", 400, ""},
		{"GET", "/v1/trace?from=p1&to=10.1.0.200&proto=tcp", "", 400, "dport is required for tcp: a rule across parameters"},
		{"GET", "/v1/trace?from=p1&to=10.1.0.200&dport=0", "", 400, ""},
		{"GET", "/v1/trace?from=p1&to=10.1.0.200&hops=3", "", 400, "an unknown query parameter"},
		{"GET", "/v1/trace?from=p1&to=" + controllertest.BrokenTrace.String(), "", 500, ""},
		{"GET", "/v1/flows", "", 501, ""},

		{"DELETE", "/v1/networks/blue", "", 409, ""},
		{"DELETE", "/v1/networks/nope", "", 404, ""},
		{"PUT", "/v1/networks/0-longest-name-of-32-characters0", `{"subnet":"10.5.0.0/24"}`, 201, ""},
		{"PUT", "/v1/networks/0-longest-name-of-32-characters00", `{"subnet":"10.6.0.0/24"}`, 400, ""},
		{"DELETE", "/v1/networks/0-longest-name-of-32-characters0", "", 204, ""},
		{"DELETE", "/v1/routers/r2", "", 204, ""},
		{"DELETE", "/v1/routers/r2", "", 404, ""},
		{"DELETE", "/v1/ports/p2", "", 204, ""},
		{"DELETE", "/v1/ports/p2", "", 404, ""},
		{"DELETE", "/v1/ports/-p2", "", 404, ""},
	} {
		a.send(f.Srv.URL, "s3cret", c)
	}
	// Without the token: every operation but the probes is refused.
	for _, key := range slices.Sorted(maps.Keys(a.ops)) {
		method, path, _ := strings.Cut(key, " ")
		path = regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x")
		sec, ok := a.ops[key]["security"]
		open := ok && len(asList(sec)) == 0
		switch got := a.send(f.Srv.URL, "", apiCall{method, path, "{}", 0, ""}); {
		case open && got == http.StatusUnauthorized:
			t.Errorf("%s %s without a token answered 401, but the spec marks it open (security: [])", method, path)
		case !open && got != http.StatusUnauthorized:
			t.Errorf("%s %s without a token answered %d, but the spec has it need the bearer token (it lacks security: [])", method, path, got)
		}
	}
	// A listener without a token, addressed by a foreign name (DNS
	// rebinding): every operation but the probes is refused, as with a
	// missing token.
	guarded := httptest.NewServer(httpapi.GuardHosts(f.Srv.Config.Handler, nil))
	t.Cleanup(guarded.Close)
	a.host = "evil.example"
	for _, key := range slices.Sorted(maps.Keys(a.ops)) {
		method, path, _ := strings.Cut(key, " ")
		path = regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x")
		sec, ok := a.ops[key]["security"]
		open := ok && len(asList(sec)) == 0
		if got := a.send(guarded.URL, "", apiCall{method, path, "{}", 0, ""}); open == (got == http.StatusForbidden) {
			t.Errorf("%s %s for Host evil.example answered %d; the probes (security: []) stay open, all else is 403", method, path, got)
		}
	}
	a.host = ""
	// A store that fails: every change answers 500.
	f.St.Close()
	for _, c := range []apiCall{
		{"PUT", "/v1/networks/gray", `{"subnet":"10.7.0.0/24"}`, 500, ""},
		{"DELETE", "/v1/networks/spare", "", 500, ""},
		{"PUT", "/v1/ports/p4", `{"network":"blue","type":"tap"}`, 500, ""},
		{"DELETE", "/v1/ports/p1", "", 500, ""},
		{"PUT", "/v1/routers/r5", `{"networks":["blue","red"]}`, 500, ""},
		{"DELETE", "/v1/routers/r1", "", 500, ""},
		{"PUT", "/v1/security-groups/gray", `{"rules":[]}`, 500, ""},
		{"DELETE", "/v1/security-groups/db", "", 500, ""},
		{"PUT", "/v1/floating-ips/gray", `{"address":"203.0.113.7","port":"p4"}`, 500, ""},
		{"DELETE", "/v1/floating-ips/keep", "", 500, ""},
		{"PUT", "/v1/port-forwards/gray", `{"host_port":22,"port":"p4"}`, 500, ""},
		{"DELETE", "/v1/port-forwards/keep", "", 500, ""},
	} {
		a.send(f.Srv.URL, "s3cret", c)
	}
	// A backend with flows, as OVS.
	st2, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	fake := controllertest.NewFake()
	withFlows := controllertest.StartFixtureOn(t, st2, fake, controllertest.OVSFake{Fake: fake})
	for _, c := range []apiCall{
		{"PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24"}`, 201, ""},
		{"PUT", "/v1/ports/p1", `{"network":"blue","type":"tap"}`, 201, ""},
		{"GET", "/v1/flows", "", 200, ""},
		{"GET", "/v1/flows?port=p1", "", 200, ""},
		{"GET", "/v1/flows?network=blue", "", 200, ""},
		{"GET", "/v1/flows?port=nope", "", 404, ""},
		{"GET", "/v1/flows?network=nope", "", 404, ""},
		{"GET", "/v1/flows?port=p1&network=blue", "", 400, "port and network exclude each other: a rule across parameters"},
		{"GET", "/v1/flows?table=0", "", 400, "an unknown query parameter"},
	} {
		a.send(withFlows.Srv.URL, "s3cret", c)
	}
	fake.Mu.Lock()
	fake.FlowsErr = controllertest.ErrFakeDatapath
	fake.Mu.Unlock()
	a.send(withFlows.Srv.URL, "s3cret", apiCall{"GET", "/v1/flows", "", 500, ""})
	// A datapath that stopped answering: every call that needs it passes
	// its deadline, 504.
	st3, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st3.Close() })
	stalled := &stalledBackend{OVSFake: controllertest.OVSFake{Fake: controllertest.NewFake()}}
	withStall := controllertest.StartFixtureOn(t, st3, stalled.Fake, stalled)
	for _, c := range []apiCall{
		{"PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24"}`, 201, ""},
		{"PUT", "/v1/networks/red", `{"subnet":"10.2.0.0/24"}`, 201, ""},
		{"PUT", "/v1/networks/spare", `{"subnet":"10.3.0.0/24"}`, 201, ""},
		{"PUT", "/v1/ports/p1", `{"network":"blue","type":"tap"}`, 201, ""},
		{"PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201, ""},
		{"PUT", "/v1/security-groups/web", `{"rules":[]}`, 201, ""},
		{"PUT", "/v1/security-groups/spare", `{"rules":[]}`, 201, ""},
		{"PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"p1"}`, 201, ""},
		{"PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"p1"}`, 201, ""},
	} {
		a.send(withStall.Srv.URL, "s3cret", c)
	}
	stalled.stalled.Store(true)
	for _, c := range []apiCall{
		{"PUT", "/v1/networks/gray", `{"subnet":"10.7.0.0/24"}`, 504, ""},
		{"DELETE", "/v1/networks/spare", "", 504, ""},
		{"PUT", "/v1/ports/p2", `{"network":"blue","type":"tap"}`, 504, ""},
		{"DELETE", "/v1/ports/p1", "", 504, ""},
		{"PUT", "/v1/routers/r2", `{"networks":["blue","spare"]}`, 504, ""},
		{"DELETE", "/v1/routers/r1", "", 504, ""},
		{"GET", "/v1/flows", "", 504, ""},
		{"GET", "/v1/trace?from=p1&to=10.1.0.5", "", 504, ""},
		{"PUT", "/v1/security-groups/web", `{"rules":[{"direction":"ingress"}]}`, 504, ""},
		// Not undone: the datapath is handed the policy again later.
		{"DELETE", "/v1/security-groups/spare", "", 204, ""},
		{"PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.6","port":"p1"}`, 504, ""},
		{"DELETE", "/v1/floating-ips/pub", "", 504, ""},
		{"PUT", "/v1/port-forwards/web", `{"host_port":8081,"port":"p1"}`, 504, ""},
		{"DELETE", "/v1/port-forwards/web", "", 504, ""},
	} {
		a.send(withStall.Srv.URL, "s3cret", c)
	}
	// A backend that enforces no security groups, over a stored group.
	unenforcing := controllertest.NewUnenforcingFixture(t)
	for _, c := range []apiCall{
		{"PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24"}`, 201, ""},
		{"PUT", "/v1/ports/p1", `{"network":"blue","type":"tap","security_groups":["web"]}`, 501, ""},
		{"PUT", "/v1/security-groups/db", `{"rules":[]}`, 501, ""},
		{"GET", "/v1/security-groups/web?stats=true", "", 501, ""},
		{"PUT", "/v1/floating-ips/pub", `{"address":"203.0.113.5","port":"p1"}`, 501, ""},
		{"PUT", "/v1/port-forwards/web", `{"host_port":8080,"port":"p1"}`, 501, ""},
	} {
		a.send(unenforcing.Srv.URL, "s3cret", c)
	}
	// A backend that translates nothing, over a stored floating IP and
	// forward.
	held := natServer(t)
	for _, c := range []apiCall{
		{"GET", "/v1/floating-ips/pub?stats=true", "", 501, ""},
		{"GET", "/v1/port-forwards/web?stats=true", "", 501, ""},
	} {
		a.send(held, "s3cret", c)
	}
	notReady := notReadyServer(t)
	for _, c := range []apiCall{
		{"GET", "/readyz", "", 503, ""},
		{"GET", "/v1/info", "", 503, ""},
		{"GET", "/metrics", "", 500, ""},
		{"PUT", "/v1/networks/gray", `{"subnet":"10.7.0.0/24"}`, 503, ""},
		{"DELETE", "/v1/networks/green", "", 503, ""},
		{"PUT", "/v1/ports/p2", `{"network":"blue","type":"tap"}`, 503, ""},
		{"DELETE", "/v1/ports/p1", "", 503, ""},
		{"PUT", "/v1/routers/r2", `{"networks":["blue","red"]}`, 503, ""},
		{"DELETE", "/v1/routers/r1", "", 503, ""},
		{"GET", "/v1/flows", "", 503, ""},
		{"GET", "/v1/trace?from=p1&to=10.1.0.5", "", 503, ""},
		{"PUT", "/v1/security-groups/x", `{"rules":[]}`, 503, ""},
		{"DELETE", "/v1/security-groups/web", "", 503, ""},
		{"GET", "/v1/security-groups/web?stats=true", "", 503, ""},
		{"PUT", "/v1/floating-ips/x", `{"address":"203.0.113.9","port":"p1"}`, 503, ""},
		{"GET", "/v1/floating-ips/pub?stats=true", "", 503, ""},
		{"DELETE", "/v1/floating-ips/pub", "", 503, ""},
		{"PUT", "/v1/port-forwards/x", `{"host_port":9,"port":"p1"}`, 503, ""},
		{"GET", "/v1/port-forwards/web?stats=true", "", 503, ""},
		{"DELETE", "/v1/port-forwards/web", "", 503, ""},
	} {
		a.send(notReady, "", c)
	}

	// Statuses the spec rightly lists that no request here can cause.
	unprovoked := map[string]string{
		"DELETE /v1/ports/{name} 409":        "a DELETE while the port's attach is under way",
		"PUT /v1/routers/{name} 409":         "all 4094 router ids in use",
		"PUT /v1/security-groups/{name} 409": "all 65535 security group ids in use",
	}
	for _, key := range slices.Sorted(maps.Keys(a.ops)) {
		for _, status := range slices.Sorted(maps.Keys(a.ops[key]["responses"].(map[string]any))) {
			k := key + " " + status
			switch why, skip := unprovoked[k]; {
			case a.seen[k] && skip:
				t.Errorf("%s was answered after all; drop it from unprovoked (%s)", k, why)
			case !a.seen[k] && !skip:
				t.Errorf("%s lists %s for %s, but no request of this test got it: add one that does, or drop the status if the server cannot give it", specFile, status, key)
			}
			delete(unprovoked, k)
		}
	}
	for k := range unprovoked {
		t.Errorf("unprovoked names %s, which the spec does not list", k)
	}
}

// stalledBackend is the fake with flows whose switch, once stalled, answers
// nothing: every call fails as a call past its deadline does (an OVSDB
// transaction, an OpenFlow bundle or an ofproto/trace that timed out).
type stalledBackend struct {
	controllertest.OVSFake
	stalled atomic.Bool
}

// errStalled is what a stalled call returns: a deadline passed, wrapped
// as the backends wrap their errors.
var errStalled = fmt.Errorf("ovsdb transaction: %w", context.DeadlineExceeded)

func (b *stalledBackend) Capabilities() datapath.Capabilities {
	c := b.OVSFake.Capabilities()
	c.Tracer, c.FlowLister, c.Policy, c.NAT = b, b, b, b
	return c
}

func (b *stalledBackend) SetNAT(ctx context.Context, n model.NAT) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.OVSFake.SetNAT(ctx, n)
}

func (b *stalledBackend) SetPolicy(ctx context.Context, p model.Policy) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.OVSFake.SetPolicy(ctx, p)
}

func (b *stalledBackend) check() error {
	if b.stalled.Load() {
		return errStalled
	}
	return nil
}

func (b *stalledBackend) EnsureNetwork(ctx context.Context, n model.Network) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.OVSFake.EnsureNetwork(ctx, n)
}

func (b *stalledBackend) DeleteNetwork(ctx context.Context, n model.Network) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.OVSFake.DeleteNetwork(ctx, n)
}

func (b *stalledBackend) AttachPort(ctx context.Context, n model.Network, p model.Port) (model.Port, error) {
	if err := b.check(); err != nil {
		return p, err
	}
	return b.OVSFake.AttachPort(ctx, n, p)
}

func (b *stalledBackend) DetachPort(ctx context.Context, n model.Network, p model.Port) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.OVSFake.DetachPort(ctx, n, p)
}

func (b *stalledBackend) EnsureRouter(ctx context.Context, r model.Router) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.OVSFake.EnsureRouter(ctx, r)
}

func (b *stalledBackend) DeleteRouter(ctx context.Context, r model.Router) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.OVSFake.DeleteRouter(ctx, r)
}

func (b *stalledBackend) Flows(ctx context.Context, s datapath.State) ([]v1.Flow, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	return b.OVSFake.Flows(ctx, s)
}

func (b *stalledBackend) Trace(ctx context.Context, s datapath.State, q v1.Query) (v1.Result, error) {
	if err := b.check(); err != nil {
		return v1.Result{}, err
	}
	return b.OVSFake.Trace(ctx, s, q)
}

// putNAT stores floating IP "pub" (203.0.113.5) and port forward "web"
// (tcp/8080) of port.
func putNAT(st store.Store, port string) error {
	ctx := context.Background()
	if _, err := st.PutFloatingIP(ctx, model.FloatingIP{Name: "pub", Address: netip.MustParseAddr("203.0.113.5"), Port: port}); err != nil {
		return err
	}
	_, err := st.PutPortForward(ctx, model.PortForward{Name: "web", Proto: model.ProtoTCP, HostPort: 8080, TargetPort: 8080, Port: port})
	return err
}

// natServer serves a controller on a fake that translates nothing
// (controllertest.Unenforcing), over a stored port p1 with floating IP
// "pub" and forward "web": a backend without NAT meeting stored objects.
func natServer(t *testing.T) string {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n, err := model.NewNetwork("blue", v1.NetworkSpec{Subnet: "10.1.0.0/24"})
	n.ID = 1
	errs := []error{err, controllertest.CreateNetwork(st, n)}
	p, err := model.NewPort("p1", v1.PortSpec{Network: "blue", Type: v1.PortTap, IP: "10.1.0.7"})
	p.MAC = model.PortMAC("p1")
	errs = append(errs, err, st.CreatePort(context.Background(), p), putNAT(st, "p1"))
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	fake := controllertest.NewFake()
	return controllertest.StartFixtureOn(t, st, fake, controllertest.Unenforcing{Fake: fake}).Srv.URL
}

// Package httpapi is the daemon's HTTP layer: the REST API's routes,
// authentication, the Host guard, request decoding and the mapping of the
// errors it meets to status codes (status.go: the controller's, api/v1's,
// the datapath's and the store's sentinels). It drives the controller only
// through its exported methods (docs/API.md describes the API).
package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/httpapi/jsonkeys"
)

const (
	// MaxBodyBytes is the largest request body accepted (docs/DESIGN.md §3).
	MaxBodyBytes = 1 << 20
	// requestTimeout bounds the datapath work of one request.
	requestTimeout = controller.DatapathTimeout
)

// API serves the REST API, /metrics, /healthz and /readyz.
type API struct {
	c       *controller.Controller
	version string
	token   string
}

// NewHandler returns the daemon's HTTP handler. With a non-empty token every
// path but /healthz and /readyz wants "Authorization: Bearer <token>".
func NewHandler(c *controller.Controller, gatherer prometheus.Gatherer, version, token string) http.Handler {
	a := &API{c: c, version: version, token: token}
	mux := http.NewServeMux()
	for _, rt := range a.routes(gatherer) {
		allow := make([]string, 0, len(rt.methods))
		for m, h := range rt.methods {
			mux.HandleFunc(m+" "+rt.path, h)
			allow = append(allow, m)
		}
		slices.Sort(allow)
		// Every other method on a known path: a JSON 405, not the mux's plain text.
		mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method not allowed: %s on %s", r.Method, r.URL.Path))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s", r.URL.Path))
	})
	return a.authenticate(mux)
}

// route is one path of the API and the handler of each method it allows.
type route struct {
	path    string
	methods map[string]http.HandlerFunc
}

// routes is the API's table of paths; docs/openapi.yaml describes the same
// table, and a test holds the two together.
func (a *API) routes(gatherer prometheus.Gatherer) []route {
	c := a.c
	return []route{
		{"/healthz", map[string]http.HandlerFunc{"GET": func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) }}},
		{"/readyz", map[string]http.HandlerFunc{"GET": a.readyz}},
		{"/metrics", map[string]http.HandlerFunc{"GET": promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}).ServeHTTP}},
		{"/v1/info", map[string]http.HandlerFunc{"GET": a.info}},
		{"/v1/networks", map[string]http.HandlerFunc{"GET": a.listNetworks}},
		{"/v1/networks/{name}", map[string]http.HandlerFunc{"GET": a.getNetwork, "PUT": putHandler(c.PutNetwork), "DELETE": deleteHandler(c.DeleteNetwork)}},
		{"/v1/ports", map[string]http.HandlerFunc{"GET": a.listPorts}},
		{"/v1/ports/{name}", map[string]http.HandlerFunc{"GET": a.getPort, "PUT": putHandler(c.PutPort), "DELETE": deleteHandler(c.DeletePort)}},
		{"/v1/routers", map[string]http.HandlerFunc{"GET": a.listRouters}},
		{"/v1/routers/{name}", map[string]http.HandlerFunc{"GET": a.getRouter, "PUT": putHandler(c.PutRouter), "DELETE": deleteHandler(c.DeleteRouter)}},
		{"/v1/security-groups", map[string]http.HandlerFunc{"GET": a.listSecurityGroups}},
		{"/v1/security-groups/{name}", map[string]http.HandlerFunc{"GET": withStats(c.SecurityGroup), "PUT": putHandler(c.PutSecurityGroup), "DELETE": deleteHandler(c.DeleteSecurityGroup)}},
		{"/v1/floating-ips", map[string]http.HandlerFunc{"GET": a.listFloatingIPs}},
		{"/v1/floating-ips/{name}", map[string]http.HandlerFunc{"GET": withStats(c.FloatingIP), "PUT": putHandler(c.PutFloatingIP), "DELETE": deleteHandler(c.DeleteFloatingIP)}},
		{"/v1/port-forwards", map[string]http.HandlerFunc{"GET": a.listPortForwards}},
		{"/v1/port-forwards/{name}", map[string]http.HandlerFunc{"GET": withStats(c.PortForward), "PUT": putHandler(c.PutPortForward), "DELETE": deleteHandler(c.DeletePortForward)}},
		{"/v1/hosts", map[string]http.HandlerFunc{"GET": a.listHosts}},
		{"/v1/flows", map[string]http.HandlerFunc{"GET": a.flows}},
		{"/v1/trace", map[string]http.HandlerFunc{"GET": a.trace}},
	}
}

// authenticate lets a request through when it carries the bearer token
// (RFC 6750; the scheme name in any case). The probes stay open, so that
// kubelet and systemd need no secret. Tokens are compared as SHA-256 digests
// in constant time: neither the bytes nor the length of the token leak
// through the time an answer takes.
func (a *API) authenticate(next http.Handler) http.Handler {
	if a.token == "" {
		return next
	}
	want := sha256.Sum256([]byte(a.token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ovs-vnet"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := a.c.Ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *API) info(w http.ResponseWriter, _ *http.Request) {
	info, err := a.c.Info()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v1.Info{
		Backend:           info.Backend,
		Bridge:            info.Bridge,
		DatapathType:      info.DatapathType,
		Version:           a.version,
		OpenFlowConnected: info.OpenFlowConnected,
		NoDHCP:            info.NoDHCP,
		Host:              a.c.HostName(),
		Cluster:           a.c.Clustered(),
	})
}

func (a *API) listNetworks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, v1.NetworkList{Networks: a.c.Networks()})
}

func (a *API) getNetwork(w http.ResponseWriter, r *http.Request) {
	n, err := a.c.Network(r.PathValue("name"))
	respond(w, http.StatusOK, n, err)
}

func (a *API) listRouters(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, v1.RouterList{Routers: a.c.Routers()})
}

func (a *API) getRouter(w http.ResponseWriter, r *http.Request) {
	rt, err := a.c.Router(r.PathValue("name"))
	respond(w, http.StatusOK, rt, err)
}

func (a *API) listPorts(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "network", "host")
	if !ok {
		return
	}
	ports, err := a.c.Ports(q["network"], q["host"])
	respond(w, http.StatusOK, v1.PortList{Ports: ports}, err)
}

func (a *API) listSecurityGroups(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, v1.SecurityGroupList{SecurityGroups: a.c.SecurityGroups()})
}

// withStats serves a GET of one object whose ?stats=true adds its
// counters on this host, which asks the datapath: a security group's
// rules', a floating IP's or a forward's.
func withStats[V any](get func(ctx context.Context, name string, stats bool) (V, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, ok := query(w, r, "stats")
		if !ok {
			return
		}
		stats, err := strconv.ParseBool(cmp.Or(q["stats"], "false"))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid: stats must be true or false, not %q", q["stats"]))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		v, err := get(ctx, r.PathValue("name"), stats)
		respond(w, http.StatusOK, v, err)
	}
}

// listFloatingIPs and listPortForwards answer the lists, of one port with
// ?port=.
func (a *API) listFloatingIPs(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "port")
	if !ok {
		return
	}
	fips, err := a.c.FloatingIPs(q["port"])
	respond(w, http.StatusOK, v1.FloatingIPList{FloatingIPs: fips}, err)
}

func (a *API) listPortForwards(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "port")
	if !ok {
		return
	}
	fwds, err := a.c.PortForwards(q["port"])
	respond(w, http.StatusOK, v1.PortForwardList{PortForwards: fwds}, err)
}

func (a *API) listHosts(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, v1.HostList{Hosts: a.c.Hosts()})
}

func (a *API) getPort(w http.ResponseWriter, r *http.Request) {
	p, err := a.c.Port(r.PathValue("name"))
	respond(w, http.StatusOK, p, err)
}

func (a *API) flows(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "port", "network")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	flows, err := a.c.Flows(ctx, controller.FlowFilter{Port: q["port"], Network: q["network"]})
	respond(w, http.StatusOK, v1.FlowList{Flows: flows}, err)
}

func (a *API) trace(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "from", "from_address", "to", "proto", "dport", "src", "src_mac")
	if !ok {
		return
	}
	tq, err := traceQuery(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	res, err := a.c.Trace(ctx, tq)
	respond(w, http.StatusOK, res, err)
}

// query reads a request's query parameters, each at most once and each one
// of known, or answers 400 itself and returns false: a misspelt filter must
// not silently widen the answer.
func query(w http.ResponseWriter, r *http.Request, known ...string) (map[string]string, bool) {
	out := map[string]string{}
	for k, vs := range r.URL.Query() {
		switch {
		case !slices.Contains(known, k):
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid: unknown query parameter %q; %s takes %s", k, r.URL.Path, strings.Join(known, ", ")))
			return nil, false
		case len(vs) > 1:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid: query parameter %q given %d times", k, len(vs)))
			return nil, false
		}
		out[k] = vs[0]
	}
	return out, true
}

// traceQuery parses GET /v1/trace's parameters; Query.Check judges them.
func traceQuery(q map[string]string) (v1.Query, error) {
	tq := v1.Query{From: q["from"], Proto: q["proto"], SrcMAC: q["src_mac"]}
	var err error
	if tq.To, err = netip.ParseAddr(q["to"]); err != nil {
		return tq, fmt.Errorf("invalid: to: %v", err)
	}
	if s := q["src"]; s != "" {
		if tq.Src, err = netip.ParseAddr(s); err != nil {
			return tq, fmt.Errorf("invalid: src: %v", err)
		}
	}
	if s := q["from_address"]; s != "" {
		if tq.FromAddress, err = netip.ParseAddr(s); err != nil {
			return tq, fmt.Errorf("invalid: from_address: %v", err)
		}
	}
	if s := q["dport"]; s != "" {
		port, err := strconv.ParseUint(s, 10, 16)
		if err != nil || port == 0 {
			return tq, fmt.Errorf("invalid: dport must be a port number 1-65535, not %q", s)
		}
		tq.DPort = uint16(port)
	}
	return tq, nil
}

// putHandler serves a PUT of an object: decode the spec, apply it under the
// request deadline, answer 201 when created and 200 when it already was.
func putHandler[S, R any](apply func(ctx context.Context, name string, spec S) (R, bool, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var spec S
		if !decode(w, r, &spec) {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		obj, created, err := apply(ctx, r.PathValue("name"), spec)
		respond(w, createdStatus(created), obj, err)
	}
}

// deleteHandler serves a DELETE of an object under the request deadline.
func deleteHandler(remove func(ctx context.Context, name string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		respond(w, http.StatusNoContent, nil, remove(ctx, r.PathValue("name")))
	}
}

func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// decode reads exactly one JSON object of at most MaxBodyBytes with no unknown,
// repeated or wrongly cased keys (jsonkeys.Check) into v, or answers the
// error itself and returns false. The whole body is read before anything is
// decoded, so that the limit counts every byte: white space after the object
// too, which a decoder would otherwise stop short of.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
		// Only JSON's white space may follow: dec.More() would let a
		// stray ']' or '}' through.
		if err == nil && len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		if err = jsonkeys.Check(body, reflect.TypeOf(v)); err != nil {
			writeError(w, http.StatusBadRequest, "invalid: "+err.Error())
			return false
		}
	}
	var tooBig *http.MaxBytesError
	var notObject *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "request body is empty; a JSON object is required")
	case errors.As(err, &notObject) && notObject.Field == "":
		// encoding/json would name the Go type the body was decoded into,
		// which is no part of the API and changes when code moves.
		writeError(w, http.StatusBadRequest, "malformed JSON body: a JSON object is required, not "+jsonKind(notObject.Value))
	case err != nil:
		writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
	default:
		return true
	}
	return false
}

func respond(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		writeError(w, httpStatus(err), err.Error())
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, v1.Error{Error: kindFirst(status, msg)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client has gone; nothing to tell it
}

// jsonKind names a JSON value's kind as JSON does: encoding/json says
// "bool" where JSON says "boolean".
func jsonKind(goKind string) string {
	if goKind == "bool" {
		return "boolean"
	}
	return goKind
}

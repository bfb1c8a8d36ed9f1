// Package client is the Go client of ovs-vnet's REST API (docs/API.md), used
// by vnetctl and the CNI plugin. It speaks HTTP or HTTPS over TCP or over the
// daemon's unix socket, and turns every answer that is not a success into an
// *Error carrying the daemon's status and message.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// DefaultServer is where the daemon listens unless told otherwise (--listen).
const DefaultServer = "http://127.0.0.1:9476"

// Error is an answer of the daemon that is not a success.
type Error struct {
	Status  int    // HTTP status
	Message string // the daemon's {"error": ...}, or the body when it sent none
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// StatusOf is the HTTP status of a daemon's answer in err, or 0 when err is
// not one (the daemon could not be reached, a bad argument...).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Options are what a connection may need besides the server's address.
type Options struct {
	Token  string // bearer token (--token-file of the daemon)
	CAFile string // PEM bundle to verify an https server with, instead of the system's
}

// Client talks to one daemon. It is safe for concurrent use.
type Client struct {
	base  string // scheme://host, without a trailing slash
	token string
	http  *http.Client
}

// New returns a client of server: an http:// or https:// URL, or the path of
// the daemon's unix socket ("unix:/run/ovs-vnet/api.sock", "/run/ovs-vnet/api.sock",
// "https+unix:///run/ovs-vnet/api.sock" when it serves TLS there).
func New(server string, opts Options) (*Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	base, sock, err := parseServer(server)
	if err != nil {
		return nil, err
	}
	if sock != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", opts.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{base: base, token: opts.Token, http: &http.Client{Transport: tr}}, nil
}

// parseServer splits a server address into the URL base requests go to and,
// for a unix socket, the socket's path.
func parseServer(server string) (base, sock string, err error) {
	switch {
	case strings.HasPrefix(server, "unix:") && !strings.HasPrefix(server, "unix://"):
		return "http://ovs-vnet", strings.TrimPrefix(server, "unix:"), nil
	case strings.HasPrefix(server, "/"):
		return "http://ovs-vnet", server, nil
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", "", fmt.Errorf("server %q: %w", server, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return "", "", fmt.Errorf("server %q has no host", server)
		}
		return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), "", nil
	case "http+unix", "https+unix", "unix":
		if u.Path == "" {
			return "", "", fmt.Errorf("server %q has no socket path", server)
		}
		scheme := strings.TrimSuffix(u.Scheme, "+unix")
		if scheme == "unix" {
			scheme = "http"
		}
		return scheme + "://ovs-vnet", u.Path, nil
	default:
		return "", "", fmt.Errorf("server %q: want http://HOST:PORT, https://HOST:PORT or a unix socket path", server)
	}
}

// Do sends one request with body (nil, or a value to encode as JSON) and
// decodes a successful answer into out (when not nil). It returns the status.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, answerError(resp.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func answerError(status int, data []byte) *Error {
	var e v1.Error
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return &Error{Status: status, Message: e.Error}
	}
	msg := strings.TrimSpace(string(data))
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Message: msg}
}

// Info describes the daemon and its backend.
func (c *Client) Info(ctx context.Context) (v1.Info, error) {
	var i v1.Info
	_, err := c.Do(ctx, http.MethodGet, "/v1/info", nil, &i)
	return i, err
}

// Ready is nil once the daemon serves requests, else why not.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.Do(ctx, http.MethodGet, "/readyz", nil, nil)
	return err
}

// Networks lists every network, sorted by name.
func (c *Client) Networks(ctx context.Context) ([]v1.Network, error) {
	var l v1.NetworkList
	_, err := c.Do(ctx, http.MethodGet, "/v1/networks", nil, &l)
	return l.Networks, err
}

// Network gets one network.
func (c *Client) Network(ctx context.Context, name string) (v1.Network, error) {
	var n v1.Network
	_, err := c.Do(ctx, http.MethodGet, "/v1/networks/"+url.PathEscape(name), nil, &n)
	return n, err
}

// PutNetwork creates the network, or finds it with the same spec, or changes
// its dhcp, dns and domain in place to spec's (created false for both): a
// spec without them clears dns and domain and turns DHCP on. Any other
// difference is a conflict.
func (c *Client) PutNetwork(ctx context.Context, name string, spec v1.NetworkSpec) (n v1.Network, created bool, err error) {
	status, err := c.Do(ctx, http.MethodPut, "/v1/networks/"+url.PathEscape(name), spec, &n)
	return n, status == http.StatusCreated, err
}

// DeleteNetwork deletes a network no port or router uses.
func (c *Client) DeleteNetwork(ctx context.Context, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v1/networks/"+url.PathEscape(name), nil, nil)
	return err
}

// Routers lists every router, sorted by name.
func (c *Client) Routers(ctx context.Context) ([]v1.Router, error) {
	var l v1.RouterList
	_, err := c.Do(ctx, http.MethodGet, "/v1/routers", nil, &l)
	return l.Routers, err
}

// Router gets one router.
func (c *Client) Router(ctx context.Context, name string) (v1.Router, error) {
	var r v1.Router
	_, err := c.Do(ctx, http.MethodGet, "/v1/routers/"+url.PathEscape(name), nil, &r)
	return r, err
}

// PutRouter creates or replaces a router (created false when it existed).
func (c *Client) PutRouter(ctx context.Context, name string, spec v1.RouterSpec) (r v1.Router, created bool, err error) {
	status, err := c.Do(ctx, http.MethodPut, "/v1/routers/"+url.PathEscape(name), spec, &r)
	return r, status == http.StatusCreated, err
}

// DeleteRouter deletes a router.
func (c *Client) DeleteRouter(ctx context.Context, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v1/routers/"+url.PathEscape(name), nil, nil)
	return err
}

// Ports lists the ports of network, or all ports when network is "".
func (c *Client) Ports(ctx context.Context, network string) ([]v1.Port, error) {
	path := "/v1/ports"
	if network != "" {
		path += "?network=" + url.QueryEscape(network)
	}
	var l v1.PortList
	_, err := c.Do(ctx, http.MethodGet, path, nil, &l)
	return l.Ports, err
}

// Port gets one port.
func (c *Client) Port(ctx context.Context, name string) (v1.Port, error) {
	var p v1.Port
	_, err := c.Do(ctx, http.MethodGet, "/v1/ports/"+url.PathEscape(name), nil, &p)
	return p, err
}

// PutPort attaches a port and answers once it forwards (created false when
// it already existed with this spec).
func (c *Client) PutPort(ctx context.Context, name string, spec v1.PortSpec) (p v1.Port, created bool, err error) {
	status, err := c.Do(ctx, http.MethodPut, "/v1/ports/"+url.PathEscape(name), spec, &p)
	return p, status == http.StatusCreated, err
}

// DeletePort detaches and deletes a port.
func (c *Client) DeletePort(ctx context.Context, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v1/ports/"+url.PathEscape(name), nil, nil)
	return err
}

// SecurityGroups lists every security group, sorted by name.
func (c *Client) SecurityGroups(ctx context.Context) ([]v1.SecurityGroup, error) {
	var l v1.SecurityGroupList
	_, err := c.Do(ctx, http.MethodGet, "/v1/security-groups", nil, &l)
	return l.SecurityGroups, err
}

// SecurityGroup gets one security group; with stats, its rules' hits on the
// daemon's host too.
func (c *Client) SecurityGroup(ctx context.Context, name string, stats bool) (v1.SecurityGroup, error) {
	var g v1.SecurityGroup
	_, err := c.Do(ctx, http.MethodGet, "/v1/security-groups/"+url.PathEscape(name)+statsQuery(stats), nil, &g)
	return g, err
}

// PutSecurityGroup creates or replaces a security group (created false when
// it existed, with these rules or others).
func (c *Client) PutSecurityGroup(ctx context.Context, name string, spec v1.SecurityGroupSpec) (g v1.SecurityGroup, created bool, err error) {
	status, err := c.Do(ctx, http.MethodPut, "/v1/security-groups/"+url.PathEscape(name), spec, &g)
	return g, status == http.StatusCreated, err
}

// DeleteSecurityGroup deletes a security group no port lists and no other
// group's rule names.
func (c *Client) DeleteSecurityGroup(ctx context.Context, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v1/security-groups/"+url.PathEscape(name), nil, nil)
	return err
}

// Flows lists ovs-vnet's flows with their counters (OVS only): those of one
// port, or of one network and its ports, or all when both are "".
func (c *Client) Flows(ctx context.Context, port, network string) ([]v1.Flow, error) {
	q := url.Values{}
	if port != "" {
		q.Set("port", port)
	}
	if network != "" {
		q.Set("network", network)
	}
	path := "/v1/flows"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l v1.FlowList
	_, err := c.Do(ctx, http.MethodGet, path, nil, &l)
	return l.Flows, err
}

// Trace asks what a packet from port q.From, or from q.FromAddress outside
// the host, to q.To does in the datapath.
func (c *Client) Trace(ctx context.Context, q v1.Query) (v1.Result, error) {
	v := url.Values{"to": {q.To.String()}}
	if q.From != "" {
		v.Set("from", q.From)
	}
	if q.FromAddress.IsValid() {
		v.Set("from_address", q.FromAddress.String())
	}
	if q.Proto != "" {
		v.Set("proto", q.Proto)
	}
	if q.DPort != 0 {
		v.Set("dport", strconv.Itoa(int(q.DPort)))
	}
	if q.Src.IsValid() {
		v.Set("src", q.Src.String())
	}
	if q.SrcMAC != "" {
		v.Set("src_mac", q.SrcMAC)
	}
	var res v1.Result
	_, err := c.Do(ctx, http.MethodGet, "/v1/trace?"+v.Encode(), nil, &res)
	return res, err
}

package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// FloatingIPs lists the floating IPs, of one port or all when port is "",
// sorted by name.
func (c *Client) FloatingIPs(ctx context.Context, port string) ([]v1.FloatingIP, error) {
	var l v1.FloatingIPList
	_, err := c.Do(ctx, http.MethodGet, "/v1/floating-ips"+portQuery(port), nil, &l)
	return l.FloatingIPs, err
}

// FloatingIP gets one floating IP; with stats, its counters on the port's
// host too.
func (c *Client) FloatingIP(ctx context.Context, name string, stats bool) (v1.FloatingIP, error) {
	var f v1.FloatingIP
	_, err := c.Do(ctx, http.MethodGet, "/v1/floating-ips/"+url.PathEscape(name)+statsQuery(stats), nil, &f)
	return f, err
}

// PutFloatingIP creates a floating IP, or replaces it (created false: it
// existed, with this spec or another).
func (c *Client) PutFloatingIP(ctx context.Context, name string, spec v1.FloatingIPSpec) (f v1.FloatingIP, created bool, err error) {
	status, err := c.Do(ctx, http.MethodPut, "/v1/floating-ips/"+url.PathEscape(name), spec, &f)
	return f, status == http.StatusCreated, err
}

// DeleteFloatingIP deletes a floating IP.
func (c *Client) DeleteFloatingIP(ctx context.Context, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v1/floating-ips/"+url.PathEscape(name), nil, nil)
	return err
}

// PortForwards lists the port forwards, of one port or all when port is "",
// sorted by name.
func (c *Client) PortForwards(ctx context.Context, port string) ([]v1.PortForward, error) {
	var l v1.PortForwardList
	_, err := c.Do(ctx, http.MethodGet, "/v1/port-forwards"+portQuery(port), nil, &l)
	return l.PortForwards, err
}

// PortForward gets one port forward; with stats, its counters on the port's
// host too.
func (c *Client) PortForward(ctx context.Context, name string, stats bool) (v1.PortForward, error) {
	var f v1.PortForward
	_, err := c.Do(ctx, http.MethodGet, "/v1/port-forwards/"+url.PathEscape(name)+statsQuery(stats), nil, &f)
	return f, err
}

// PutPortForward creates a port forward, or replaces it (created false: it
// existed, with this spec or another).
func (c *Client) PutPortForward(ctx context.Context, name string, spec v1.PortForwardSpec) (f v1.PortForward, created bool, err error) {
	status, err := c.Do(ctx, http.MethodPut, "/v1/port-forwards/"+url.PathEscape(name), spec, &f)
	return f, status == http.StatusCreated, err
}

// DeletePortForward deletes a port forward.
func (c *Client) DeletePortForward(ctx context.Context, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v1/port-forwards/"+url.PathEscape(name), nil, nil)
	return err
}

func portQuery(port string) string {
	if port == "" {
		return ""
	}
	return "?port=" + url.QueryEscape(port)
}

func statsQuery(stats bool) string {
	if !stats {
		return ""
	}
	return "?stats=true"
}

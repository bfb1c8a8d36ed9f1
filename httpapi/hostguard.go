package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// GuardHosts answers 403 to a request whose Host header, or Origin header
// when it has one, names anything but a loopback host or one of allowed
// (host names, compared without case and port). It protects a TCP listener
// without a token from DNS rebinding: a web page whose name the attacker
// re-points at 127.0.0.1 reaches the API from the victim's browser as a
// same-origin request, but its Host and Origin still carry the attacker's
// name. The probes stay open, as with the token, for kubelet and load
// balancers that address the daemon by an IP of their own choosing.
// docs/security.md ("Browsers and DNS rebinding") describes the rule.
func GuardHosts(next http.Handler, allowed []string) http.Handler {
	names := map[string]bool{}
	for _, h := range allowed {
		names[canonicalHost(h)] = true
	}
	ok := func(host string) bool {
		host = canonicalHost(host)
		return names[host] || isLoopbackHost(host)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		if !ok(r.Host) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("Host %q is not allowed: without a token the API answers only requests addressed to a loopback name or address (localhost, 127.0.0.1, [::1]) or to a name given with --allowed-hosts", r.Host))
			return
		}
		// Browsers send Origin on every cross-origin request and on
		// same-origin ones that change something; other clients send none.
		// "null" is the opaque origin of sandboxed frames and local files.
		if origin, sent := r.Header["Origin"]; sent {
			u, err := url.Parse(origin[0])
			if len(origin) > 1 || err != nil || u.Host == "" || !ok(u.Host) {
				writeError(w, http.StatusForbidden, fmt.Sprintf("Origin %q is not allowed: without a token the API answers only pages of a loopback name or address, or of a name given with --allowed-hosts", strings.Join(origin, ",")))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// canonicalHost is the host name of a Host header value or --allowed-hosts
// entry (HOST, HOST:PORT, [IPV6] or [IPV6]:PORT) in lower case, without the
// trailing dot of a fully qualified name.
func canonicalHost(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// isLoopbackHost: "localhost" (RFC 6761 has every resolver answer it with
// loopback), an address of 127.0.0.0/8 or ::1. Names under .localhost are
// not taken on trust: not every browser and resolver keeps them off DNS.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

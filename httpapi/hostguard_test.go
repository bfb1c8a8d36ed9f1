package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestGuardHosts: loopback names and addresses, with or without a port, and
// the configured names pass; any other Host, or an Origin of any other
// host, gets a JSON 403; the probes pass whatever the Host.
func TestGuardHosts(t *testing.T) {
	h := GuardHosts(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		[]string{"vnet.internal", "Box.Example:9476", "[fd00::7]"})
	for _, c := range []struct {
		path, host, origin string
		want               int
	}{
		{"/v1/networks", "127.0.0.1:9476", "", 204},
		{"/v1/networks", "127.0.0.1", "", 204},
		{"/v1/networks", "127.1.2.3:80", "", 204},
		{"/v1/networks", "localhost:9476", "", 204},
		{"/v1/networks", "LOCALHOST", "", 204},
		{"/v1/networks", "localhost.:9476", "", 204},
		{"/v1/networks", "[::1]:9476", "", 204},
		{"/v1/networks", "[::1]", "", 204},
		{"/v1/networks", "[::ffff:127.0.0.1]:9476", "", 204},
		{"/v1/networks", "vnet.internal:9476", "", 204},
		{"/v1/networks", "box.example", "", 204},
		{"/v1/networks", "[fd00::7]:1", "", 204},
		{"/metrics", "evil.example", "", 403},
		{"/v1/networks", "evil.example:9476", "", 403},
		{"/v1/networks", "evil.example", "", 403},
		{"/v1/networks", "localhost.evil.example", "", 403},
		{"/v1/networks", "evil.localhost", "", 403},
		{"/v1/networks", "127.0.0.1.nip.io", "", 403},
		{"/v1/networks", "10.0.0.1:9476", "", 403},
		{"/v1/networks", "[fe80::1%25lo]:9476", "", 403},
		{"/v1/networks", "", "", 403},
		{"/no/such", "evil.example", "", 403},
		{"/v1/networks", "127.0.0.1:9476", "http://127.0.0.1:9476", 204},
		{"/v1/networks", "127.0.0.1:9476", "http://localhost:3000", 204},
		{"/v1/networks", "127.0.0.1:9476", "https://vnet.internal", 204},
		{"/v1/networks", "127.0.0.1:9476", "http://evil.example:9476", 403},
		{"/v1/networks", "127.0.0.1:9476", "http://evil.example", 403},
		{"/v1/networks", "127.0.0.1:9476", "null", 403},
		{"/v1/networks", "127.0.0.1:9476", "file://", 403},
		{"/healthz", "10.0.0.1:9476", "http://evil.example", 204},
		{"/readyz", "evil.example", "", 204},
	} {
		req := httptest.NewRequest("PUT", "http://127.0.0.1:9476"+c.path, nil)
		req.Host = c.host
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s Host %q Origin %q: %d, want %d", c.path, c.host, c.origin, rec.Code, c.want)
			continue
		}
		var body map[string]string
		if c.want == 403 && (rec.Header().Get("Content-Type") != "application/json" || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["error"] == "") {
			t.Errorf("%s Host %q Origin %q: %q, want a JSON error", c.path, c.host, c.origin, rec.Body)
		}
	}
}

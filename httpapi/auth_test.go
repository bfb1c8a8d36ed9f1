package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
)

// TestAuthAnswers: every refused request gets the same 401 with a JSON error
// and a Bearer challenge, whatever was wrong with its credentials; nothing
// but the exact token (with the scheme in any case) passes.
func TestAuthAnswers(t *testing.T) {
	f := controllertest.NewFixture(t)
	for _, c := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/v1/info", "", 401},
		{"GET", "/v1/info", "Bearer", 401},
		{"GET", "/v1/info", "Bearer ", 401},
		{"GET", "/v1/info", "s3cret", 401},
		{"GET", "/v1/info", "Basic s3cret", 401},
		{"GET", "/v1/info", "Bearer s3cre", 401},
		{"GET", "/v1/info", "Bearer s3cret2", 401},
		{"GET", "/v1/info", "Bearer  s3cret", 401},
		{"PUT", "/v1/networks/blue", "", 401},
		{"DELETE", "/v1/ports/p1", "Bearer wrong", 401},
		{"GET", "/no/such/path", "", 401},
		{"GET", "/healthz/", "", 401},
		{"GET", "/v1/info", "bearer s3cret", 200},
		{"GET", "/v1/info", "BEARER s3cret", 200},
	} {
		req, _ := http.NewRequest(c.method, f.Srv.URL+c.path, strings.NewReader(`{"subnet":"10.9.0.0/24"}`))
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.auth, resp.StatusCode, c.want)
			continue
		}
		if c.want != 401 {
			continue
		}
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
			t.Errorf("%s %s with %q: WWW-Authenticate %q", c.method, c.path, c.auth, ch)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" || body["error"] == "" {
			t.Errorf("%s %s with %q: %s %v, want a JSON error", c.method, c.path, c.auth, ct, body)
		}
	}
	// A refused PUT changed nothing.
	if code, _ := f.Do(t, "GET", "/v1/networks/blue", ""); code != 404 {
		t.Fatalf("unauthenticated PUT created the network: GET %d", code)
	}
}

// TestAuth: the token guards every path but the probes, /metrics too.
func TestAuth(t *testing.T) {
	f := controllertest.NewFixture(t)
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/v1/networks", "", 401},
		{"/v1/networks", "Bearer wrong", 401},
		{"/metrics", "", 401},
		{"/v1/networks", "Bearer s3cret", 200},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
	} {
		req, _ := http.NewRequest("GET", f.Srv.URL+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.auth, resp.StatusCode, c.want)
		}
	}
}

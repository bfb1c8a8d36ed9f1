package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

func TestParseServer(t *testing.T) {
	for _, tc := range []struct {
		in, base, sock string
		bad            bool
	}{
		{in: "http://127.0.0.1:9476", base: "http://127.0.0.1:9476"},
		{in: "https://vnet.example:9476/", base: "https://vnet.example:9476"},
		{in: "unix:/run/ovs-vnet/api.sock", base: "http://ovs-vnet", sock: "/run/ovs-vnet/api.sock"},
		{in: "/run/ovs-vnet/api.sock", base: "http://ovs-vnet", sock: "/run/ovs-vnet/api.sock"},
		{in: "http+unix:///run/ovs-vnet/api.sock", base: "http://ovs-vnet", sock: "/run/ovs-vnet/api.sock"},
		{in: "https+unix:///run/ovs-vnet/api.sock", base: "https://ovs-vnet", sock: "/run/ovs-vnet/api.sock"},
		{in: "127.0.0.1:9476", bad: true},
		{in: "ftp://x", bad: true},
		{in: "http://", bad: true},
		{in: "http+unix://", bad: true},
	} {
		base, sock, err := parseServer(tc.in)
		if (err != nil) != tc.bad || base != tc.base || sock != tc.sock {
			t.Errorf("%q: base %q sock %q err %v; want %q %q bad=%v", tc.in, base, sock, err, tc.base, tc.sock, tc.bad)
		}
	}
}

// TestErrorsAndSocket: answers that are not successes become *Error with the
// daemon's message, the token is sent, and a unix socket works.
func TestErrorsAndSocket(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/networks/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"missing or wrong bearer token"}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"not found: network \"` + r.PathValue("name") + `\""}`))
	})
	mux.HandleFunc("GET /v1/routers", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("upstream broke\n"))
	})
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	ctx := context.Background()
	c, err := New(sock, Options{Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Network(ctx, "blue")
	if StatusOf(err) != 404 || err.Error() != `not found: network "blue" (HTTP 404)` {
		t.Errorf("404: %v", err)
	}
	if _, err := c.Routers(ctx); StatusOf(err) != 502 || err.Error() != "upstream broke (HTTP 502)" {
		t.Errorf("plain-text error: %v", err)
	}
	anon, _ := New("unix:"+sock, Options{})
	if _, err := anon.Network(ctx, "blue"); StatusOf(err) != 401 {
		t.Errorf("no token: %v", err)
	}
	down, _ := New("http://127.0.0.1:1", Options{})
	if err := down.Ready(ctx); err == nil || StatusOf(err) != 0 {
		t.Errorf("unreachable: %v", err)
	}
}

package unixctl

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeServer listens on a socket of its own and answers each connection
// with serve, after reading one request.
func fakeServer(t *testing.T, serve func(t *testing.T, req request, c net.Conn)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vnt-unixctl-") // short: socket paths have a 108-byte limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "fake.ctl")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var req request
				if err := json.NewDecoder(c).Decode(&req); err != nil {
					t.Errorf("fake server: decode request: %v", err)
					return
				}
				serve(t, req, c)
			}()
		}
	}()
	return path
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestCallFraming(t *testing.T) {
	for _, c := range []struct {
		name   string
		writes []string // what the server sends, write by write
		want   string
		err    string
	}{
		{name: "result", writes: []string{`{"id":1,"result":"ok\n","error":null}`}, want: "ok\n"},
		{name: "split mid-string", writes: []string{`{"id":1,"res`, `ult":"a \"quoted\" {brace}`, `","error":null}`}, want: `a "quoted" {brace}`},
		{name: "other messages first", writes: []string{`{"id":null,"method":"echo","params":[]}{"id":7,"result":"not ours","error":null}`, ` {"id":1,"result":"mine","error":null}`}, want: "mine"},
		{name: "error without result", writes: []string{`{"id":1,"error":"\"nosuch\" is not a valid command\n"}`}, err: `server answered: "nosuch" is not a valid command`},
		{name: "empty result", writes: []string{`{"id":1,"result":"","error":null}`}, want: ""},
		{name: "closed early", writes: []string{`{"id":1,"res`}, err: "read reply"},
		{name: "neither", writes: []string{`{"id":1,"result":null,"error":null}`}, err: "neither result nor error"},
		{name: "non-text result", writes: []string{`{"id":1,"result":{"reply":"x"},"error":null}`}, err: "not text"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := fakeServer(t, func(t *testing.T, req request, conn net.Conn) {
				if req.Method != "dpctl/show" || req.ID != 1 || len(req.Params) != 1 || req.Params[0] != "-s" {
					t.Errorf("request = %+v", req)
				}
				for _, w := range c.writes {
					if _, err := conn.Write([]byte(w)); err != nil {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
			got, err := Call(testContext(t, 5*time.Second), path, "dpctl/show", "-s")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Call = %q, %v; want error containing %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Call = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestCallCommandErrorIsTyped(t *testing.T) {
	path := fakeServer(t, func(t *testing.T, req request, c net.Conn) {
		_, _ = c.Write([]byte(`{"id":1,"error":"bad"}`))
	})
	_, err := Call(testContext(t, 5*time.Second), path, "x")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Message != "bad" || ce.Method != "x" {
		t.Fatalf("err = %#v", err)
	}
}

func TestCallParamsNeverNull(t *testing.T) {
	path := fakeServer(t, func(t *testing.T, req request, c net.Conn) {
		if req.Params == nil {
			t.Errorf("params decoded as null")
		}
		_, _ = c.Write([]byte(`{"id":1,"result":"v","error":null}`))
	})
	if _, err := Call(testContext(t, 5*time.Second), path, "version"); err != nil {
		t.Fatal(err)
	}
}

// A daemon that takes the request and never answers costs the caller its
// deadline, no more; so does one that is cancelled without a deadline.
func TestCallBoundedByContext(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	path := fakeServer(t, func(t *testing.T, req request, c net.Conn) { <-hang })

	start := time.Now()
	_, err := Call(testContext(t, 200*time.Millisecond), path, "version")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Call took %v past a 200 ms deadline", took)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = Call(ctx, path, "version")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("cancelled Call took %v", took)
	}
}

func TestCallOversizedReply(t *testing.T) {
	path := fakeServer(t, func(t *testing.T, req request, c net.Conn) {
		_, _ = c.Write([]byte(`{"id":1,"result":"`))
		chunk := []byte(strings.Repeat("x", 1<<16))
		for range MaxReplyBytes/len(chunk) + 2 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	_, err := Call(testContext(t, 10*time.Second), path, "big")
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}

func TestCallNoSocket(t *testing.T) {
	_, err := Call(testContext(t, time.Second), filepath.Join(t.TempDir(), "none.ctl"), "version")
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("err = %v", err)
	}
}

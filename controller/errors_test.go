package controller_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// TestAttachRefusalKindFirst: whatever the datapath's refusal wraps, and
// wherever the wrapping puts its kind, the answer's message starts with the
// kind, once; a refused attach is rolled back, and an ordinary refusal is
// not logged at ERROR (the client has the answer; an incomplete rollback
// would be).
func TestAttachRefusalKindFirst(t *testing.T) {
	f := newFixture(t)
	if code, body := f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
	dir := t.TempDir() // any existing path will do as the namespace for the fake
	for _, c := range []struct {
		err  error
		code int
		want string
	}{
		// The foreign tap, as datapath/link and the backends word it.
		{fmt.Errorf("port bad: %w", fmt.Errorf("%w: interface vnt-tap0 exists and is not ours (alias %q)", datapath.ErrConflict, "")),
			409, `conflict: port bad: interface vnt-tap0 exists and is not ours (alias "")`},
		{fmt.Errorf("boom: %w", datapath.ErrConflict), 409, "conflict: boom"},
		{fmt.Errorf("%w: boom", datapath.ErrConflict), 409, "conflict: boom"},
		{fmt.Errorf("netns x: %w", datapath.ErrNoNetns), 400, "invalid: netns x: network namespace does not exist"},
		{fmt.Errorf("port bad: ovsdb transaction: %w", context.DeadlineExceeded), 504, "timeout: port bad: ovsdb transaction: context deadline exceeded"},
		{errors.New("port bad: ovsdb: boom"), 500, "internal error: port bad: ovsdb: boom"},
	} {
		f.Fake.Mu.Lock()
		f.Fake.FailPorts["bad"] = c.err
		f.Fake.Mu.Unlock()
		code, body := f.Do(t, "PUT", "/v1/ports/bad", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.2"}`)
		if code != c.code || body["error"] != c.want {
			t.Errorf("attach failing with %q: %d %q, want %d %q", c.err, code, body["error"], c.code, c.want)
		}
		f.Fake.Mu.Lock()
		left := f.Fake.Ports["bad"]
		f.Fake.Mu.Unlock()
		if left {
			t.Errorf("attach failing with %q: port left in the datapath", c.err)
		}
	}
	if logged := f.LoggedErrors(); len(logged) != 0 {
		t.Errorf("logged at ERROR: %q", logged)
	}
}

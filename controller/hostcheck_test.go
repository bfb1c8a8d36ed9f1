package controller_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// hostCheckingFake is the fake backend with a host that uses 10.93.0.0/24
// and cannot be read for 10.94.0.0/24.
type hostCheckingFake struct{ *controllertest.Fake }

func (f hostCheckingFake) Capabilities() datapath.Capabilities {
	c := f.Fake.Capabilities()
	c.HostChecker = f
	return c
}

func (hostCheckingFake) HostConflict(n model.Network) (string, error) {
	switch n.Subnet.String() {
	case "10.93.0.0/24":
		return "subnet 10.93.0.0/24 holds the host's own address 10.93.0.5/24 on eth9", nil
	case "10.94.0.0/24":
		return "", errors.New("check the host's routes: netlink says no")
	}
	return "", nil
}

// TestPutNetworkHostConflict: a network the backend's host check refuses
// is answered 409 with the backend's reason (500 when the host cannot be
// read), and neither the store nor the backend ever sees it.
func TestPutNetworkHostConflict(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fake := controllertest.NewFake()
	f := startFixtureOn(t, st, fake, hostCheckingFake{fake})
	code, body := f.Do(t, "PUT", "/v1/networks/clash", `{"subnet":"10.93.0.0/24"}`)
	if msg, _ := body["error"].(string); code != 409 || !strings.HasPrefix(msg, "conflict: ") || !strings.Contains(msg, "10.93.0.5/24 on eth9") {
		t.Fatalf("PUT over a host address: %d %v, want 409 naming it", code, body)
	}
	if code, body := f.Do(t, "PUT", "/v1/networks/unread", `{"subnet":"10.94.0.0/24"}`); code != 500 {
		t.Fatalf("PUT when the host cannot be read: %d %v, want 500", code, body)
	}
	for _, name := range []string{"clash", "unread"} {
		if code, _ := f.Do(t, "GET", "/v1/networks/"+name, ""); code != 404 {
			t.Errorf("GET %s after a refused PUT: %d", name, code)
		}
		fake.Mu.Lock()
		if fake.Networks[name] {
			t.Errorf("backend got %s", name)
		}
		fake.Mu.Unlock()
	}
	if s, err := st.Load(t.Context()); err != nil || len(s.Networks) != 0 {
		t.Errorf("store after refused PUTs: %+v, %v; want no network", s.Networks, err)
	}
	if code, body := f.Do(t, "PUT", "/v1/networks/free", `{"subnet":"10.95.0.0/24"}`); code != 201 {
		t.Fatalf("PUT of a free subnet: %d %v", code, body)
	}
}

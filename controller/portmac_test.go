package controller_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// bridgedFake is the fake on an integration bridge, as the OVS backend is.
type bridgedFake struct{ *controllertest.Fake }

func (bridgedFake) Info() datapath.Info { return datapath.Info{Backend: "fake", Bridge: "br-test"} }

// TestPortDatapathMAC: a MAC the datapath uses itself — any network's
// gateway, the bridge's own interface — is refused with 400 before anything
// is taken: the address asked for stays free, and no port reaches the
// datapath.
func TestPortDatapathMAC(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fake := controllertest.NewFake()
	f := startFixtureOn(t, st, fake, bridgedFake{fake})
	f.withNetworks(t, "blue", "red")
	for _, c := range []struct{ mac, want string }{
		{model.BridgeMAC("blue"), `the gateway MAC of network "blue"`},
		{strings.ToUpper(model.BridgeMAC("red")), `the gateway MAC of network "red"`},
		{model.HostMAC("br-test"), "the integration bridge br-test's own interface"},
	} {
		body := fmt.Sprintf(`{"network":"blue","type":"tap","ip":"10.1.0.9","mac":%q}`, c.mac)
		out := f.mustDo(t, "PUT", "/v1/ports/p1", body, 400)
		if msg := fmt.Sprint(out["error"]); !strings.HasPrefix(msg, "invalid: ") || !strings.Contains(msg, c.want) {
			t.Errorf("mac %s: %q, want it to name %s", c.mac, msg, c.want)
		}
	}
	fake.Mu.Lock()
	attached := len(fake.Ports)
	fake.Mu.Unlock()
	if attached != 0 {
		t.Fatalf("a refused port reached the datapath: %d ports", attached)
	}
	f.mustDo(t, "PUT", "/v1/ports/p1", `{"network":"blue","type":"tap","ip":"10.1.0.9","mac":"02:00:00:00:00:09"}`, 201)
}

// TestNetworkGatewayMACOfAPort: the same rule from the other side — a
// network whose gateway MAC a port already has is refused with 409, and
// nothing of it is left.
func TestNetworkGatewayMACOfAPort(t *testing.T) {
	f := newFixture(t)
	f.withNetworks(t, "blue")
	body := fmt.Sprintf(`{"network":"blue","type":"tap","mac":%q}`, model.BridgeMAC("green"))
	f.mustDo(t, "PUT", "/v1/ports/p1", body, 201)
	out := f.mustDo(t, "PUT", "/v1/networks/green", `{"subnet":"10.9.0.0/24"}`, 409)
	if msg := fmt.Sprint(out["error"]); !strings.Contains(msg, `port "p1"`) {
		t.Errorf("error %q does not name the port", msg)
	}
	f.mustDo(t, "GET", "/v1/networks/green", "", 404)
	f.mustDo(t, "DELETE", "/v1/ports/p1", "", 204)
	f.mustDo(t, "PUT", "/v1/networks/green", `{"subnet":"10.9.0.0/24"}`, 201)
}

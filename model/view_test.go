package model

import (
	"encoding/json"
	"net/netip"
	"testing"
)

// TestViewsKeepTheStoredJSON: the API answered with the stored objects
// before api/v1 had views of them; a view must write what the object does,
// so that neither the answers nor the stored records change shape.
func TestViewsKeepTheStoredJSON(t *testing.T) {
	n := Network{Name: "blue", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1"), MTU: 1400, Masquerade: true, ID: 3,
		DHCP: true, DNS: "10.1.0.53,9.9.9.9", Domain: "lab.example"}
	r := Router{Name: "r1", Networks: []string{"blue", "red"}, ID: 2}
	for _, c := range []struct {
		name         string
		object, view any
	}{
		{"network", n, n.View()},
		{"router", r, r.View()},
	} {
		o, err := json.Marshal(c.object)
		if err != nil {
			t.Fatal(err)
		}
		v, err := json.Marshal(c.view)
		if err != nil {
			t.Fatal(err)
		}
		if string(o) != string(v) {
			t.Errorf("%s: stored %s, answered %s", c.name, o, v)
		}
	}
}

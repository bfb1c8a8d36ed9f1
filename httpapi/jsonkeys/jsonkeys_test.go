package jsonkeys

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

type inner struct {
	Name string `json:"name"`
}

type Embedded struct {
	Promoted int `json:"promoted"`
}

type outer struct {
	Embedded
	Plain   int              `json:"plain,omitempty"`
	Untaged string           // key "Untaged"
	Skipped string           `json:"-"`
	Addr    netip.Addr       `json:"addr"` // decodes itself (TextUnmarshaler)
	Inner   *inner           `json:"inner"`
	List    []inner          `json:"list"`
	ByName  map[string]inner `json:"by_name"`
	Any     any              `json:"any"`
	Raw     json.RawMessage  `json:"raw"`
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		typ  any
		body string
		want string // substring of the error; "" for none
	}{
		{v1.PortSpec{}, `{"network":"blue","netns":"web1","mac":"02:00:00:00:00:01"}`, ""},
		{v1.PortSpec{}, `{"network":"blue","network":"red"}`, `the body's object: key "network" is given twice`},
		{v1.PortSpec{}, `{"Network":"blue"}`, `key "Network" must be written "network"`},
		{v1.PortSpec{}, `{"NETNS":"x","network":"blue"}`, `key "NETNS" must be written "netns"`},
		{v1.PortSpec{}, `{"default_Route":true}`, `key "default_Route" must be written "default_route"`},
		// encoding/json folds as bytes.EqualFold does: the long s and the
		// Kelvin sign match "s" and "k".
		{v1.NetworkSpec{}, `{"ſubnet":"10.0.0.0/24"}`, `key "ſubnet" must be written "subnet"`},
		{v1.NetworkSpec{}, `{"subnet":"10.0.0.0/24","masquerade":true,"mtu":1500,"gateway":"10.0.0.1"}`, ""},
		{v1.NetworkSpec{}, `{"subnet":"10.0.0.0/24","MTU":1500}`, `key "MTU" must be written "mtu"`},
		{v1.RouterSpec{}, `{"networks":["blue","red"]}`, ""},
		{v1.RouterSpec{}, `{"networks":["blue"],"networks":["red","green"]}`, `key "networks" is given twice`},
		{v1.RouterSpec{}, `{"Networks":["blue","red"]}`, `key "Networks" must be written "networks"`},
		{v1.SecurityGroupSpec{}, `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"80","remote_group":"web"}]}`, ""},
		{v1.SecurityGroupSpec{}, `{"rules":[{"direction":"ingress","Remote":"10.0.0.0/8"}]}`, `rules[0]: key "Remote" must be written "remote"`},
		{v1.SecurityGroupSpec{}, `{"rules":[{"direction":"ingress","ports":"80","ports":"81"}]}`, `rules[0]: key "ports" is given twice`},
		{v1.PortSpec{}, `{"network":"blue","Security_Groups":["web"]}`, `key "Security_Groups" must be written "security_groups"`},
		{outer{}, `{"promoted":1,"Untaged":"x","plain":2}`, ""},
		{outer{}, `{"Promoted":1}`, `key "Promoted" must be written "promoted"`},
		{outer{}, `{"untaged":"x"}`, `key "untaged" must be written "Untaged"`},
		{outer{}, `{"inner":{"name":"a","Name":"b"}}`, `inner: key "Name" must be written "name"`},
		{outer{}, `{"inner":{"name":"a","name":"b"}}`, `inner: key "name" is given twice`},
		{outer{}, `{"list":[{"name":"a"},{"NAME":"b"}]}`, `list[1]: key "NAME" must be written "name"`},
		// A map's keys are the client's: any case, but once.
		{outer{}, `{"by_name":{"A":{"name":"x"},"a":{"name":"y"}}}`, ""},
		{outer{}, `{"by_name":{"a":{},"a":{}}}`, `by_name: key "a" is given twice`},
		{outer{}, `{"by_name":{"a":{"Name":"x"}}}`, `by_name.a: key "Name" must be written "name"`},
		// What the type does not describe is held to unique keys only.
		{outer{}, `{"any":{"X":1,"x":2}}`, ""},
		{outer{}, `{"any":[{"x":1,"x":2}]}`, `any[0]: key "x" is given twice`},
		{outer{}, `{"raw":{"x":1,"x":2}}`, `raw: key "x" is given twice`},
		{outer{}, `{"addr":"10.0.0.1","skipped":"unknown keys are the decoder's"}`, ""},
		{outer{}, `{"a":{"b":{"c":{"c":1,"c":2}}}}`, `a.b.c: key "c" is given twice`},
		{outer{}, `{"plain":1}   `, ""},
		{outer{}, `{"plain":`, "EOF"},
	} {
		err := Check([]byte(tc.body), reflect.TypeOf(tc.typ))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%T %s: %v", tc.typ, tc.body, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%T %s: got %v, want %q", tc.typ, tc.body, err, tc.want)
		}
	}
}

// FuzzCheck: Check never panics, and for a type that says nothing of its
// keys it refuses a valid document exactly when an object in it has a key
// twice — which decoding into maps and encoding again shows as keys lost.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{"network":"blue","network":"red"}`, `{"a":[{"b":1},{"b":2,"b":3}]}`, `[{"x":{}},{"x":{"y":[1,"y"]}}]`,
		`{"Network":"blue"}`, `{"networks":["a","b"]}`, `"s"`, `{`, `[[[[`, `{"a":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range []any{v1.PortSpec{}, v1.NetworkSpec{}, v1.RouterSpec{}, outer{}} {
			_ = Check(data, reflect.TypeOf(typ))
		}
		if !json.Valid(data) {
			return
		}
		err := Check(data, nil)
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		again, _ := json.Marshal(v)
		lost := keys(t, data) != keys(t, again)
		if lost != (err != nil) {
			t.Fatalf("%q: keys lost in a round trip: %v; Check: %v", data, lost, err)
		}
	})
}

// keys counts the object keys of a valid document.
func keys(t *testing.T, data []byte) int {
	var count func(dec *json.Decoder) int
	count = func(dec *json.Decoder) int {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		n := 0
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				_, _ = dec.Token()
				n += 1 + count(dec)
			}
			_, _ = dec.Token()
		case json.Delim('['):
			for dec.More() {
				n += count(dec)
			}
			_, _ = dec.Token()
		}
		return n
	}
	return count(json.NewDecoder(bytes.NewReader(data)))
}

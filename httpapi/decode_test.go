package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// FuzzDecode feeds arbitrary bodies to the request decoder and the validators
// behind it: it must never panic, and must answer either a valid spec or a 4xx.
func FuzzDecode(f *testing.F) {
	f.Add(`{"subnet":"10.10.0.0/24","gateway":"10.10.0.1","mtu":1500}`)
	f.Add(`{"network":"blue","netns":"web1","ip":"10.10.0.5","mac":"02:00:00:00:00:01"}`)
	f.Add(`{"networks":["blue","red"]}`)
	f.Add(`{"rules":[{"direction":"ingress","protocol":"tcp","ports":"80-90","remote_group":"web"},{"direction":"egress","remote":"10.0.0.0/8"}]}`)
	f.Add(`{"network":"blue","type":"tap","security_groups":["web","db"]}`)
	f.Add(`{"subnet":`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, v := range []any{&v1.NetworkSpec{}, &v1.PortSpec{}, &v1.RouterSpec{}, &v1.SecurityGroupSpec{}} {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("PUT", "/v1/x/y", strings.NewReader(body))
			if !decode(w, r, v) {
				if w.Code < 400 || w.Code >= 500 || !strings.Contains(w.Body.String(), `"error"`) {
					t.Fatalf("decode refused with %d %q", w.Code, w.Body)
				}
				continue
			}
			switch s := v.(type) {
			case *v1.NetworkSpec:
				_, _ = model.NewNetwork("n", *s)
			case *v1.PortSpec:
				_, _ = model.NewPort("p", *s)
			case *v1.RouterSpec:
				_, _ = model.NewRouter("r", *s)
			case *v1.SecurityGroupSpec:
				_, _ = model.NewSecurityGroup("g", *s)
			}
		}
	})
}

func TestDecodeTooLarge(t *testing.T) {
	w := httptest.NewRecorder()
	body := `{"subnet":"` + strings.Repeat("1", MaxBodyBytes) + `"}`
	if decode(w, httptest.NewRequest("PUT", "/", strings.NewReader(body)), &v1.NetworkSpec{}) || w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d", w.Code)
	}
}

// TestDecodeCountsEveryByte: white space after the object counts toward the
// limit as much as the object does; it used to be skipped unread.
func TestDecodeCountsEveryByte(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       int
	}{
		{"10 MiB of spaces after the object", `{"subnet":"10.0.0.0/24"}` + strings.Repeat(" ", 10<<20), http.StatusRequestEntityTooLarge},
		{"one byte over in white space", `{"subnet":"10.0.0.0/24"}` + strings.Repeat("\n", MaxBodyBytes-23), http.StatusRequestEntityTooLarge},
		{"exactly the limit", `{"subnet":"10.0.0.0/24"}` + strings.Repeat("\t", MaxBodyBytes-24), 0},
		{"a stray bracket after the object", `{"subnet":"10.0.0.0/24"}]`, http.StatusBadRequest},
		{"a stray brace after the object", `{"subnet":"10.0.0.0/24"} }`, http.StatusBadRequest},
		{"a non-breaking space after the object", "{\"subnet\":\"10.0.0.0/24\"}\u00a0", http.StatusBadRequest},
	} {
		w := httptest.NewRecorder()
		ok := decode(w, httptest.NewRequest("PUT", "/", strings.NewReader(c.body)), &v1.NetworkSpec{})
		if c.want == 0 && !ok || c.want != 0 && (ok || w.Code != c.want) {
			t.Errorf("%s: accepted %v, status %d %s; want %d", c.name, ok, w.Code, w.Body, c.want)
		}
	}
}

// TestDecodeStrictKeys: a key given twice or in another case than its
// field's is refused, naming the key, in every body the API takes.
func TestDecodeStrictKeys(t *testing.T) {
	for _, c := range []struct {
		v          any
		body, want string
	}{
		{&v1.NetworkSpec{}, `{"subnet":"10.0.0.0/24","subnet":"10.1.0.0/24"}`, `invalid: the body's object: key \"subnet\" is given twice`},
		{&v1.NetworkSpec{}, `{"Subnet":"10.0.0.0/24"}`, `invalid: the body's object: key \"Subnet\" must be written \"subnet\"`},
		{&v1.PortSpec{}, `{"network":"blue","netns":"a","Network":"red"}`, `key \"Network\" must be written \"network\"`},
		{&v1.PortSpec{}, `{"network":"blue","type":"tap","type":"tap"}`, `key \"type\" is given twice`},
		{&v1.RouterSpec{}, `{"NETWORKS":["blue","red"]}`, `key \"NETWORKS\" must be written \"networks\"`},
		{&v1.RouterSpec{}, `{"networks":["blue","red"],"networks":["blue","red"]}`, `key \"networks\" is given twice`},
		// Not an object: said without the Go type the body is decoded into.
		{&v1.NetworkSpec{}, `[]`, `"invalid: malformed JSON body: a JSON object is required, not array"`},
		{&v1.PortSpec{}, `"blue"`, `"invalid: malformed JSON body: a JSON object is required, not string"`},
	} {
		w := httptest.NewRecorder()
		if decode(w, httptest.NewRequest("PUT", "/", strings.NewReader(c.body)), c.v) || w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%T %s: %d %s; want 400 with %s", c.v, c.body, w.Code, w.Body, c.want)
		}
	}
}

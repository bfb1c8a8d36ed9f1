package controller

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// FuzzDecode feeds arbitrary bodies to the request decoder and the validators
// behind it: it must never panic, and must answer either a valid spec or a 4xx.
func FuzzDecode(f *testing.F) {
	f.Add(`{"subnet":"10.10.0.0/24","gateway":"10.10.0.1","mtu":1500}`)
	f.Add(`{"network":"blue","netns":"web1","ip":"10.10.0.5","mac":"02:00:00:00:00:01"}`)
	f.Add(`{"networks":["blue","red"]}`)
	f.Add(`{"subnet":`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, v := range []any{&model.NetworkSpec{}, &model.PortSpec{}, &model.RouterSpec{}} {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("PUT", "/v1/x/y", strings.NewReader(body))
			if !decode(w, r, v) {
				if w.Code < 400 || w.Code >= 500 || !strings.Contains(w.Body.String(), `"error"`) {
					t.Fatalf("decode refused with %d %q", w.Code, w.Body)
				}
				continue
			}
			switch s := v.(type) {
			case *model.NetworkSpec:
				_, _ = s.Network("n")
			case *model.PortSpec:
				_, _ = s.Port("p")
			case *model.RouterSpec:
				_, _ = s.Router("r")
			}
		}
	})
}

func TestDecodeTooLarge(t *testing.T) {
	w := httptest.NewRecorder()
	body := `{"subnet":"` + strings.Repeat("1", MaxBodyBytes) + `"}`
	if decode(w, httptest.NewRequest("PUT", "/", strings.NewReader(body)), &model.NetworkSpec{}) || w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d", w.Code)
	}
}

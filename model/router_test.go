package model

import (
	"errors"
	"reflect"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestRouterSpec(t *testing.T) {
	for _, c := range []struct {
		name string
		nets []string
		want []string // nil: invalid
	}{
		{"r1", []string{"red", "blue"}, []string{"blue", "red"}},
		{"r1", []string{"a", "b", "c"}, []string{"a", "b", "c"}},
		{"r1", []string{"blue"}, nil},
		{"r1", nil, nil},
		{"r1", []string{"blue", "blue"}, nil},
		{"r1", []string{"blue", "Red"}, nil},
		{"R1", []string{"blue", "red"}, nil},
	} {
		r, err := NewRouter(c.name, v1.RouterSpec{Networks: c.nets})
		if c.want == nil {
			if !errors.Is(err, v1.ErrInvalid) {
				t.Errorf("%s %v: want v1.ErrInvalid, got %v", c.name, c.nets, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(r.Networks, c.want) || !r.Joins(c.want[0]) || r.Joins("other") {
			t.Errorf("%s %v: %+v, %v", c.name, c.nets, r, err)
		}
	}
}

func TestPeers(t *testing.T) {
	got := Peers([]Router{
		{Name: "r1", Networks: []string{"a", "b"}},
		{Name: "r2", Networks: []string{"b", "c"}},
		{Name: "r3", Networks: []string{"a", "b", "d"}},
	})
	want := map[string][]string{"a": {"b", "d"}, "b": {"a", "c", "d"}, "c": {"b"}, "d": {"a", "b"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("peers %v, want %v (not transitive: a and c share no router)", got, want)
	}
}

package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// MaxRouterNetworks bounds the networks one router joins; a router's flows
// grow with the square of its networks.
const MaxRouterNetworks = 64

// Router joins networks at L3: every listed network routes to every other
// through its own gateway address. Routing is not transitive across routers:
// two networks reach each other only when one router lists both.
type Router struct {
	Name     string   `json:"name"`
	Networks []string `json:"networks"` // sorted, distinct
	// ID is a small number unique among routers, assigned at creation; backends
	// name the router's datapath state after it (flow cookies).
	ID int `json:"id"`
}

// NewRouter checks the spec and returns the router it asks for, networks
// sorted. The caller checks that the networks exist and assigns the ID.
func NewRouter(name string, s v1.RouterSpec) (Router, error) {
	if err := v1.ValidateName(name); err != nil {
		return Router{}, err
	}
	if len(s.Networks) < 2 || len(s.Networks) > MaxRouterNetworks {
		return Router{}, invalid("a router joins 2 to %d networks, not %d", MaxRouterNetworks, len(s.Networks))
	}
	nets := slices.Sorted(slices.Values(s.Networks))
	for i, n := range nets {
		if err := v1.ValidateName(n); err != nil {
			return Router{}, fmt.Errorf("networks[%d]: %w", i, err)
		}
		if i > 0 && nets[i-1] == n {
			return Router{}, invalid("network %q is listed twice", n)
		}
	}
	return Router{Name: name, Networks: nets}, nil
}

// View renders the router for the API.
func (r Router) View() v1.Router {
	return v1.Router{Name: r.Name, Networks: r.Networks, ID: r.ID}
}

// SameSpec reports whether two routers join the same networks; the ID does
// not count.
func (r Router) SameSpec(o Router) bool {
	return r.Name == o.Name && slices.Equal(r.Networks, o.Networks)
}

// Joins reports whether the router lists network.
func (r Router) Joins(network string) bool {
	_, found := slices.BinarySearchFunc(r.Networks, network, strings.Compare)
	return found
}

// Peers returns, for each network that some router joins, the other networks
// it routes to, sorted and without repeats.
func Peers(routers []Router) map[string][]string {
	peers := map[string][]string{}
	for _, r := range routers {
		for _, a := range r.Networks {
			for _, b := range r.Networks {
				if a != b && !slices.Contains(peers[a], b) {
					peers[a] = append(peers[a], b)
				}
			}
		}
	}
	for _, p := range peers {
		slices.Sort(p)
	}
	return peers
}

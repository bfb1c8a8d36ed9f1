package link

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// Held names the ports and networks whose host links (veth or tap host ends,
// Linux bridges) are in this namespace, by their aliases; spare links
// (SpareAlias) are no port's and are not named.
func Held() (ports, networks []string, err error) {
	all, err := List(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range all {
		alias := l.Attrs().Alias
		if name, _, ok := datapath.AliasPort(alias); ok {
			ports = append(ports, name)
		} else if name, ok := strings.CutPrefix(alias, datapath.BridgeAlias("")); ok {
			networks = append(networks, name)
		}
	}
	slices.Sort(ports)
	slices.Sort(networks)
	return ports, networks, nil
}

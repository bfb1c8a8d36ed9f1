package linux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Anti-spoofing lives in the table `bridge ovs_vnet`, apart from the inet table,
// because it is per port: attaching or detaching a port adds or removes only
// that port's objects, in one `nft -f` transaction whose size does not depend
// on how many ports exist. Its layout:
//
//	map ports { type ifname : verdict }  host ifname -> jump port_<port name>
//	chain prerouting                     iifname vmap @ports (frames of bridge ports
//	                                     that are not ours match nothing and pass)
//	counter drop_dhcp_server             every port's DHCP server messages, dropped
//	chain port_<port name>               DHCP server messages (UDP 67→68) counted in
//	                                     drop_dhcp_server and dropped, own DHCP (UDP
//	                                     68→67 from own MAC) dropped,
//	                                     own MAC and IPv4 accepted, own ARP accepted,
//	                                     own IPv6 chatter dropped, the rest counted
//	                                     in spoof_<port name> and dropped
//	counter spoof_<port name>            the port's spoofed-frame drops
//
// Objects are named after the port, which the API names, so an operator who
// knows a port's name knows where its counter is.
const (
	portsMap       = "ports"
	portChainPfx   = "port_"
	spoofCounterPx = "spoof_"
	dhcpComment    = "dhcp, read by the daemon's socket"
	// dhcpServerCounter counts, for every port, the drops PolicyStats
	// reports as v1.DropDHCPServer: one counter, like OVS's one flow.
	dhcpServerCounter = "drop_" + v1.DropDHCPServer
)

// SpoofCounter names the nftables counter of a port's spoofed-frame drops: a
// named counter in table `bridge ovs_vnet`. Read it with
//
//	nft list counter bridge ovs_vnet spoof_<port>
//	nft -j list counter bridge ovs_vnet spoof_<port>   ("packets" in the counter object)
//
// or with Backend.SpoofDrops. Every frame the port sends with a source MAC or
// IPv4 address that is not its own, ARP with a sender MAC or IP that is not its
// own, and any other protocol than IPv4 and ARP counts, except IPv6 from the
// port's own MAC (the kernel's router solicitations and MLD reports, dropped
// uncounted: ports are IPv4 only). The counter survives re-attaching the port
// (a daemon restart) and is removed with the port.
func SpoofCounter(port string) string { return spoofCounterPx + port }

func portChain(port string) string { return portChainPfx + port }

// BridgeSkeleton renders the parts of the bridge table every port relies on.
// Applying it again replaces the dispatch rule in place and keeps every port's
// objects.
func BridgeSkeleton() string {
	t := hostnet.Table
	var b strings.Builder
	fmt.Fprintf(&b, "add table bridge %s\n", t)
	fmt.Fprintf(&b, "add map bridge %s %s { type ifname : verdict; }\n", t, portsMap)
	fmt.Fprintf(&b, "add counter bridge %s %s\n", t, dhcpServerCounter)
	fmt.Fprintf(&b, "add chain bridge %s prerouting { type filter hook prerouting priority filter; policy accept; }\n", t)
	fmt.Fprintf(&b, "flush chain bridge %s prerouting\n", t)
	fmt.Fprintf(&b, "add rule bridge %s prerouting iifname vmap @%s\n", t, portsMap)
	return b.String()
}

// PortRules renders what AttachPort applies for p on top of the skeleton: the
// port's chain (flushed and refilled, so re-attaching is idempotent), its spoof
// counter (created once, never reset by re-adding), and its map element.
func PortRules(p model.Port) (string, error) {
	if err := checkPort(p); err != nil {
		return "", err
	}
	mac, _ := net.ParseMAC(p.MAC) // checked by checkPort
	t, chain := hostnet.Table, portChain(p.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "add chain bridge %s %s\n", t, chain)
	fmt.Fprintf(&b, "flush chain bridge %s %s\n", t, chain)
	fmt.Fprintf(&b, "add counter bridge %s %s\n", t, SpoofCounter(p.Name))
	rule := func(format string, args ...any) {
		fmt.Fprintf(&b, "add rule bridge %s %s ", t, chain)
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	// A port is never a DHCP server (docs/DHCP.md): its OFFER or ACK,
	// broadcast or to a neighbour's MAC, would hand that neighbour a
	// router and DNS server of its choosing. Whatever the source, so that
	// every such frame counts here and not as spoofed.
	rule("ether type ip udp sport %d udp dport %d counter name %s drop", dhcp.ServerPort, dhcp.ClientPort, quote(dhcpServerCounter))
	// The port's DHCP goes no further: its socket (dhcp.go) read it
	// before this hook, and no other port nor the host may see it.
	rule("ether saddr %s udp sport %d udp dport %d drop comment %q", mac, dhcp.ClientPort, dhcp.ServerPort, dhcpComment)
	rule("ether saddr %s ip saddr %s accept", mac, p.IP)
	rule("ether saddr %s arp saddr ether %s arp saddr ip %s accept", mac, mac, p.IP)
	rule("ether saddr %s ether type ip6 counter drop comment \"ipv6, not spoofing\"", mac)
	rule("counter name %s drop", quote(SpoofCounter(p.Name)))
	fmt.Fprintf(&b, "add element bridge %s %s { %s : jump %s }\n", t, portsMap, quote(p.HostIfname), chain)
	return b.String(), nil
}

// PortRulesDelete renders the removal of p's objects. nft 1.0.6 has no
// "destroy", so each object is first added (a no-op when it exists) and then
// deleted: the script succeeds whether or not the port's rules, or the table,
// are still there.
func PortRulesDelete(p model.Port) (string, error) {
	if err := checkPort(p); err != nil {
		return "", err
	}
	t, chain := hostnet.Table, portChain(p.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "add table bridge %s\n", t)
	fmt.Fprintf(&b, "add map bridge %s %s { type ifname : verdict; }\n", t, portsMap)
	fmt.Fprintf(&b, "add chain bridge %s %s\n", t, chain)
	fmt.Fprintf(&b, "add counter bridge %s %s\n", t, SpoofCounter(p.Name))
	fmt.Fprintf(&b, "add element bridge %s %s { %s : jump %s }\n", t, portsMap, quote(p.HostIfname), chain)
	fmt.Fprintf(&b, "delete element bridge %s %s { %s }\n", t, portsMap, quote(p.HostIfname))
	fmt.Fprintf(&b, "flush chain bridge %s %s\n", t, chain)
	fmt.Fprintf(&b, "delete chain bridge %s %s\n", t, chain)
	fmt.Fprintf(&b, "delete counter bridge %s %s\n", t, SpoofCounter(p.Name))
	return b.String(), nil
}

// checkPort refuses what cannot be written into an nft script safely. The
// controller validates ports already; this guards the script's syntax.
func checkPort(p model.Port) error {
	if err := v1.ValidateName(p.Name); err != nil {
		return fmt.Errorf("port name for nftables: %w", err)
	}
	if _, err := net.ParseMAC(p.MAC); err != nil {
		return fmt.Errorf("port %s: mac %q: %w", p.Name, p.MAC, err)
	}
	if !p.IP.Is4() {
		return fmt.Errorf("port %s: ip %q is not IPv4", p.Name, p.IP)
	}
	if p.HostIfname == "" || strings.ContainsFunc(p.HostIfname, func(r rune) bool { return r == '"' || r == '\\' || r < ' ' || r > '~' }) {
		return fmt.Errorf("port %s: host interface name %q cannot be matched by nftables", p.Name, p.HostIfname)
	}
	return nil
}

// bridgeTable is what Prune needs to know of the bridge table as it is.
type bridgeTable struct {
	elements map[string]string // host ifname -> chain it jumps to
	chains   []string          // port chains
	counters []string          // spoof counters
	overlay  bool              // cluster mode's objects are there (overlay_nft.go)
}

// nftList is the part of `nft -j list table` output that bridgeTable reads.
type nftList struct {
	Nftables []struct {
		Chain *struct {
			Name string `json:"name"`
		} `json:"chain"`
		Counter *struct {
			Name string `json:"name"`
		} `json:"counter"`
		Set *struct {
			Name string `json:"name"`
		} `json:"set"`
		Map *struct {
			Name string            `json:"name"`
			Elem []json.RawMessage `json:"elem"`
		} `json:"map"`
	} `json:"nftables"`
}

func parseBridgeTable(data []byte) (bridgeTable, error) {
	var list nftList
	if err := json.Unmarshal(data, &list); err != nil {
		return bridgeTable{}, fmt.Errorf("parse nft json: %w", err)
	}
	t := bridgeTable{elements: map[string]string{}}
	for _, o := range list.Nftables {
		switch {
		case o.Chain != nil && strings.HasPrefix(o.Chain.Name, portChainPfx):
			t.chains = append(t.chains, o.Chain.Name)
		case o.Counter != nil && strings.HasPrefix(o.Counter.Name, spoofCounterPx):
			t.counters = append(t.counters, o.Counter.Name)
		case o.Chain != nil && (o.Chain.Name == overlayIn || o.Chain.Name == overlayOut),
			o.Set != nil && o.Set.Name == overlaySet, o.Counter != nil && o.Counter.Name == overlayCounter:
			t.overlay = true
		case o.Map != nil && o.Map.Name == portsMap:
			for _, raw := range o.Map.Elem {
				// An element is ["ifname", {"jump": {"target": "port_x"}}].
				var pair []json.RawMessage
				var key string
				var verdict struct {
					Jump struct {
						Target string `json:"target"`
					} `json:"jump"`
				}
				if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
					return bridgeTable{}, fmt.Errorf("parse map element %s: %v", raw, err)
				}
				if err := json.Unmarshal(pair[0], &key); err != nil {
					return bridgeTable{}, fmt.Errorf("parse map element key %s: %w", pair[0], err)
				}
				if err := json.Unmarshal(pair[1], &verdict); err != nil {
					return bridgeTable{}, fmt.Errorf("parse map element verdict %s: %w", pair[1], err)
				}
				t.elements[key] = verdict.Jump.Target
			}
		}
	}
	return t, nil
}

// PruneScript renders, for the bridge table as it is, the removal of every
// per-port object that no port of want accounts for, after the skeleton (so
// the dispatch rule is back if someone removed it). With no ports and no
// networks wanted the whole table goes.
func PruneScript(have bridgeTable, want []model.Port, networks int) string {
	t := hostnet.Table
	if len(want) == 0 && networks == 0 {
		return fmt.Sprintf("add table bridge %s\ndelete table bridge %s\n", t, t)
	}
	wantChain := map[string]string{} // host ifname -> chain
	wantName := map[string]bool{}
	for _, p := range want {
		wantChain[p.HostIfname] = portChain(p.Name)
		wantName[p.Name] = true
	}
	var b strings.Builder
	b.WriteString(BridgeSkeleton())
	for _, key := range slices.Sorted(maps.Keys(have.elements)) {
		if wantChain[key] != have.elements[key] {
			fmt.Fprintf(&b, "delete element bridge %s %s { %s }\n", t, portsMap, quote(key))
		}
	}
	for _, c := range slices.Sorted(slices.Values(have.chains)) {
		if !wantName[strings.TrimPrefix(c, portChainPfx)] {
			fmt.Fprintf(&b, "flush chain bridge %s %s\ndelete chain bridge %s %s\n", t, c, t, c)
		}
	}
	for _, c := range slices.Sorted(slices.Values(have.counters)) {
		if !wantName[strings.TrimPrefix(c, spoofCounterPx)] {
			fmt.Fprintf(&b, "delete counter bridge %s %s\n", t, c)
		}
	}
	return b.String()
}

// listBridgeTable reads our bridge table; a missing table is an empty one.
func listBridgeTable(ctx context.Context) (bridgeTable, error) {
	data, err := hostnet.ListNft(ctx, "table", "bridge", hostnet.Table)
	if errors.Is(err, hostnet.ErrNotExist) {
		return bridgeTable{elements: map[string]string{}}, nil
	}
	if err != nil {
		return bridgeTable{}, err
	}
	return parseBridgeTable(data)
}

// readCounter returns the packets of a named counter in our bridge table.
func readCounter(ctx context.Context, name string) (uint64, error) {
	data, err := hostnet.ListNft(ctx, "counter", "bridge", hostnet.Table, name)
	if err != nil {
		return 0, err
	}
	var list struct {
		Nftables []struct {
			Counter *struct {
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return 0, fmt.Errorf("parse counter %s: %w", name, err)
	}
	for _, o := range list.Nftables {
		if o.Counter != nil {
			return o.Counter.Packets, nil
		}
	}
	return 0, fmt.Errorf("counter %s: not in nft output", name)
}

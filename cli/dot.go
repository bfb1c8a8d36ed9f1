package cli

import (
	"fmt"
	"html"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// Topology is every object the daemon holds, as `topology -o json` prints it.
type Topology struct {
	Networks    []v1.Network    `json:"networks"`
	Routers     []v1.Router     `json:"routers"`
	Ports       []v1.Port       `json:"ports"`
	FloatingIPs []v1.FloatingIP `json:"floating_ips"`
}

// sorted returns a copy of t with each list sorted by name, and the ports
// grouped by network: what both renderings walk. The daemon already sorts,
// but a pure function should not depend on it.
func (t Topology) sorted() (Topology, map[string][]v1.Port) {
	s := Topology{Networks: slices.Clone(t.Networks), Routers: slices.Clone(t.Routers), Ports: slices.Clone(t.Ports),
		FloatingIPs: slices.Clone(t.FloatingIPs)}
	slices.SortFunc(s.Networks, func(a, b v1.Network) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Routers, func(a, b v1.Router) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Ports, func(a, b v1.Port) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.FloatingIPs, func(a, b v1.FloatingIP) int { return strings.Compare(a.Name, b.Name) })
	byNet := map[string][]v1.Port{}
	for _, p := range s.Ports {
		byNet[p.Network] = append(byNet[p.Network], p)
	}
	return s, byNet
}

// unlistedNetworks are networks that ports name but the network list lacks:
// the lists are read one after the other, and a network may come meanwhile.
func (t Topology) unlistedNetworks(byNet map[string][]v1.Port) []string {
	var out []string
	for name := range byNet {
		if !slices.ContainsFunc(t.Networks, func(n v1.Network) bool { return n.Name == name }) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// colors colours the i-th network: a pale fill for its cluster and a strong
// colour for its node, its ports' borders and their edges.
func colors(i int) (pale, strong string) {
	palette := [...][2]string{
		{"#eaf1fb", "#3c78b4"},
		{"#fdf0e3", "#d9822b"},
		{"#e9f5e6", "#3d8b3d"},
		{"#f9e8f1", "#b8487f"},
		{"#efeaf7", "#6f55a8"},
		{"#fbf7dc", "#a08a00"},
	}
	c := palette[i%len(palette)]
	return c[0], c[1]
}

// DOT renders the topology as a Graphviz graph (`dot -Tsvg`), left to right:
// the outside world that masquerading networks reach, the floating IPs that
// reach into ports, the routers joined to the networks they list, and each
// network as a coloured box holding its node and its ports. It is a pure
// function of t.
func DOT(t Topology) string {
	t, byNet := t.sorted()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("graph \"ovs-vnet\" {\n")
	w("\tgraph [rankdir=LR, fontname=\"Helvetica\", fontsize=16, labelloc=t, nodesep=0.25, ranksep=0.8,\n")
	w("\t\tlabel=<<B>ovs-vnet</B>: %s, %s, %s>];\n", count(len(t.Networks), "network"), count(len(t.Routers), "router"), count(len(t.Ports), "port"))
	w("\tnode [fontname=\"Helvetica\", fontsize=11, shape=box, style=\"rounded,filled\", fillcolor=white];\n")
	w("\tedge [color=\"#666666\", fontname=\"Helvetica\", fontsize=9];\n")

	if slices.ContainsFunc(t.Networks, func(n v1.Network) bool { return n.Masquerade }) {
		w("\n\t%s [label=<<B>outside</B><BR/>%s>, shape=box, style=\"rounded,dashed\"];\n",
			quoteID("outside"), small("through the host's address"))
	}
	for _, f := range t.FloatingIPs {
		w("\n\t%s [label=<<B>%s</B><BR/>%s>, shape=cds, style=filled, fillcolor=\"#fff3c4\"];\n",
			quoteID("fip:"+f.Name), esc(f.Name), small(f.Address.String(), "floating IP"))
	}
	for _, r := range t.Routers {
		w("\n\t%s [label=<<B>%s</B><BR/>%s>, shape=octagon, style=filled, fillcolor=\"#4d4d4d\", fontcolor=white];\n",
			quoteID("router:"+r.Name), esc(r.Name), small("router"))
	}

	for i, n := range t.Networks {
		pale, strong := colors(i)
		w("\n\tsubgraph %s {\n", quoteID("cluster_"+n.Name))
		w("\t\tgraph [label=\"\", style=\"rounded,filled\", fillcolor=%q, color=%q];\n", pale, strong)
		details := []string{n.Subnet.String(), "gw " + n.Gateway.String() + ", mtu " + fmt.Sprint(n.MTU)}
		if n.Masquerade {
			details = append(details, "masquerade")
		}
		w("\t\t%s [label=<<B>%s</B><BR/>%s>, style=\"filled,bold\", fillcolor=%q, fontcolor=white, color=%q];\n",
			quoteID("net:"+n.Name), esc(n.Name), small(details...), strong, strong)
		writePorts(w, n.Name, byNet[n.Name], strong)
		w("\t}\n")
	}
	for _, name := range t.unlistedNetworks(byNet) {
		w("\n\tsubgraph %s {\n", quoteID("cluster_"+name))
		w("\t\tgraph [label=\"\", style=\"rounded,dashed\"];\n")
		w("\t\t%s [label=<<B>%s</B><BR/>%s>, style=\"rounded,dashed\"];\n", quoteID("net:"+name), esc(name), small("not listed"))
		writePorts(w, name, byNet[name], "#666666")
		w("\t}\n")
	}

	if len(t.Routers) > 0 {
		w("\n")
	}
	for _, r := range t.Routers {
		for _, n := range r.Networks {
			w("\t%s -- %s [penwidth=2, color=\"#4d4d4d\"];\n", quoteID("router:"+r.Name), quoteID("net:"+n))
		}
	}
	for _, n := range t.Networks {
		if n.Masquerade {
			w("\t%s -- %s [style=dashed, label=%s];\n", quoteID("outside"), quoteID("net:"+n.Name), quoteID("SNAT"))
		}
	}
	for _, f := range t.FloatingIPs {
		w("\t%s -- %s [penwidth=2, color=\"#a08a00\", label=%s];\n", quoteID("fip:"+f.Name), quoteID("port:"+f.Port), quoteID("DNAT+SNAT"))
	}
	w("}\n")
	return b.String()
}

// writePorts writes a network's ports inside its cluster, each joined to the
// network's node: veth ends as rounded boxes, tap devices (VMs) as 3D boxes.
func writePorts(w func(string, ...any), network string, ports []v1.Port, color string) {
	for _, p := range ports {
		shape, where := "box", "netns "+p.Netns+", "+p.Ifname
		if p.Type == v1.PortTap {
			shape, where = "box3d", "tap "+p.HostIfname
		}
		w("\t\t%s [label=<<B>%s</B><BR/>%s>, shape=%s, color=%q];\n",
			quoteID("port:"+p.Name), esc(p.Name), small(p.IP, p.MAC, where), shape, color)
		w("\t\t%s -- %s [color=%q];\n", quoteID("net:"+network), quoteID("port:"+p.Name), color)
	}
}

// small is lines of detail under a node's name, in an HTML-like label.
func small(lines ...string) string {
	escaped := make([]string, len(lines))
	for i, l := range lines {
		escaped[i] = esc(l)
	}
	return `<FONT POINT-SIZE="9">` + strings.Join(escaped, "<BR/>") + `</FONT>`
}

func esc(s string) string { return html.EscapeString(s) }

// quoteID quotes a DOT identifier; only '"' and '\' need escaping there.
func quoteID(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

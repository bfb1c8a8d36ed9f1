package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/cni"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestCNIRelease: a CNI port lives and dies with its namespace, on each
// backend, with the real plugin. A namespace deleted without a DEL (a
// runtime's DEL lost while the daemon was down) has its port released
// after --netns-grace: no record, host link or OVS port, and the address
// free. With a long grace, the same container's ADD into a new namespace
// replaces the port whose namespace was deleted instead of answering 409,
// and its ADD over a port an older plugin made upgrades that port.
func TestCNIRelease(t *testing.T) {
	bins := buildCNI(t)
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, box := bc.setup(t, hostNS)
			sock := filepath.Join(t.TempDir(), "api.sock")
			d := startSocketDaemon(t, hostNS, sock, append(slices.Clone(args), "--netns-grace", "3s")...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.74.0.0/24"}`, 201, nil)
			e := newCNIEnv(t, bins, sock, "")
			runCNIReleased(t, d, box, hostNS, e)

			d.stop()
			d.args = append(slices.Clone(args), "--netns-grace", "1h", "--listen", "unix:"+sock)
			d.start()
			ns := runCNIReplaced(t, d, box, hostNS, e)
			runCNIUpgraded(t, d, hostNS, e)

			d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
			d.stop()
			assertNothingLeft(t, hostNS, box, d.stateDir, ns)
		})
	}
}

// cniAdd runs the plugin's ADD for container id as eth0 in namespace ns,
// and returns the daemon's port.
func cniAdd(t *testing.T, d *daemon, e *cniEnv, id, ns string) portView {
	t.Helper()
	path := "/var/run/netns/" + ns
	if msg, code := e.plugin(t, "ADD", nil, "CNI_CONTAINERID="+id, "CNI_NETNS="+path, "CNI_IFNAME=eth0"); code != 0 {
		t.Fatalf("ADD of %s into %s: code %d, %s", id, ns, code, msg)
	}
	var p portView
	d.must("GET", "/v1/ports/"+cni.PortName(id, "eth0"), nil, 200, &p)
	if p.Netns != path || !p.ReleaseWithNetns {
		t.Fatalf("port of %s: %+v, want in %s with release_with_netns", id, p, path)
	}
	return p
}

// portLinks are the host links and OVS ports (box nil: none) the
// datapath has of port p.
func portLinks(t *testing.T, box *testbed.Sandbox, hostNS string, p portView) (links, ovsPorts []string) {
	t.Helper()
	for _, l := range linksIn(t, hostNS) {
		if l.Attrs().Alias == datapath.PortAlias(p.Name) || l.Attrs().Name == p.HostIfname {
			links = append(links, l.Attrs().Name)
		}
	}
	if box != nil {
		ovsPorts = slices.DeleteFunc(bridgePorts(t, box, hostNS), func(name string) bool { return name != p.HostIfname })
	}
	return links, ovsPorts
}

// runCNIReleased: the daemon (--netns-grace 3s) releases the port of a
// namespace deleted without DEL; its address is free again.
func runCNIReleased(t *testing.T, d *daemon, box *testbed.Sandbox, hostNS string, e *cniEnv) {
	ns := newNetns(t, "vnt-cr-")
	p := cniAdd(t, d, e, "rel-gone", ns)
	if links, ovsPorts := portLinks(t, box, hostNS, p); len(links) != 1 || box != nil && len(ovsPorts) != 1 {
		t.Fatalf("port %s before: links %v, OVS ports %v", p.Name, links, ovsPorts)
	}
	testbed.Run(t, "ip", "netns", "del", ns)
	waitFor(t, "port "+p.Name+" released after its namespace went", func() bool {
		code, _ := d.do("GET", "/v1/ports/"+p.Name, nil)
		return code == 404
	})
	if links, ovsPorts := portLinks(t, box, hostNS, p); len(links) != 0 || len(ovsPorts) != 0 {
		t.Fatalf("port %s released, but links %v, OVS ports %v are left", p.Name, links, ovsPorts)
	}
	if !strings.Contains(d.log.String(), "port released: its namespace is gone") {
		t.Error("the release is not logged")
	}
	probe := newNetns(t, "vnt-cp-")
	ip := strings.Split(p.IP, "/")[0]
	d.must("PUT", "/v1/ports/probe", map[string]string{"network": "blue", "netns": probe, "ip": ip}, 201, nil)
	d.must("DELETE", "/v1/ports/probe", nil, 204, nil)
}

// runCNIReplaced: the same container's ADD into a new namespace, after its
// first one was deleted without DEL, gets a port there that forwards; the
// old port's link is gone. It returns the new namespace.
func runCNIReplaced(t *testing.T, d *daemon, box *testbed.Sandbox, hostNS string, e *cniEnv) string {
	ns1, ns2 := newNetns(t, "vnt-cr-"), newNetns(t, "vnt-cr-")
	old := cniAdd(t, d, e, "rel-again", ns1)
	testbed.Run(t, "ip", "netns", "del", ns1)
	p := cniAdd(t, d, e, "rel-again", ns2)
	checkNamespaceEnd(t, ns2, "eth0", p)
	ping(t, ns2, p.Gateway, true)
	// One link and OVS port of the name, the new one's: the old is gone.
	if links, ovsPorts := portLinks(t, box, hostNS, old); len(links) != 1 || links[0] != p.HostIfname || box != nil && len(ovsPorts) != 1 {
		t.Fatalf("port %s replaced: links %v, OVS ports %v; want only %s", p.Name, links, ovsPorts, p.HostIfname)
	}
	if msg, code := e.plugin(t, "DEL", nil, "CNI_CONTAINERID=rel-again", "CNI_NETNS=/var/run/netns/"+ns2, "CNI_IFNAME=eth0"); code != 0 {
		t.Fatalf("DEL: code %d, %s", code, msg)
	}
	d.must("GET", "/v1/ports/"+p.Name, nil, 404, nil)
	return ns2
}

// runCNIUpgraded: a port an older plugin made — no release_with_netns and,
// on a secondary interface, no default_route false — is the same port to
// the new plugin's ADD: its record is upgraded in place, and its host link
// is the one it had (not attached again).
func runCNIUpgraded(t *testing.T, d *daemon, hostNS string, e *cniEnv) {
	ns := newNetns(t, "vnt-cu-")
	path, name := "/var/run/netns/"+ns, cni.PortName("rel-old", "eth1")
	var old portView
	d.must("PUT", "/v1/ports/"+name, map[string]string{"network": "blue", "netns": path, "ifname": "eth1", "type": "veth"}, 201, &old)
	index := func() int {
		for _, l := range linksIn(t, hostNS) {
			if l.Attrs().Name == old.HostIfname {
				return l.Attrs().Index
			}
		}
		t.Fatalf("port %s: no host link %s", name, old.HostIfname)
		return 0
	}
	before := index()
	env := []string{"CNI_CONTAINERID=rel-old", "CNI_NETNS=" + path, "CNI_IFNAME=eth1"}
	if msg, code := e.plugin(t, "ADD", nil, env...); code != 0 {
		t.Fatalf("ADD over an older plugin's port: code %d, %s", code, msg)
	}
	var p portView
	d.must("GET", "/v1/ports/"+name, nil, 200, &p)
	if !p.ReleaseWithNetns || p.DefaultRoute == nil || *p.DefaultRoute || p.IP != old.IP {
		t.Fatalf("port %s after the new plugin's ADD: %+v, want it upgraded", name, p)
	}
	if after := index(); after != before {
		t.Fatalf("port %s attached again: host link index %d, was %d", name, after, before)
	}
	if msg, code := e.plugin(t, "DEL", nil, env...); code != 0 {
		t.Fatalf("DEL: code %d, %s", code, msg)
	}
}

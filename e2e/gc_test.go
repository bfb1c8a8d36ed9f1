package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestGarbageCollection (issue 6, Must 4): at start the daemon removes what
// it owns but no longer wants — ports and a network dropped from its state
// while it was down, links, OVS ports, flows and nftables objects marked as
// ours by hand — and leaves everything of other tools exactly as it was: a
// foreign OVS bridge with a port and flows, a foreign flow and port on our
// own bridge, foreign nftables tables, a foreign Linux bridge and veth, and
// links that only look like ours (our name pattern, another tool's alias).
func TestGarbageCollection(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			hostNS := newNetns(t, "vnt-gc-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.72.0.0/24"}`, 201, nil)
			var red model.Network
			d.must("PUT", "/v1/networks/red", `{"subnet":"10.73.0.0/24"}`, 201, &red)
			nsKeep, nsGone := newNetns(t, "vnt-gck-"), newNetns(t, "vnt-gcg-")
			var keep, gone, goneTap portView
			d.must("PUT", "/v1/ports/keep", map[string]string{"network": "blue", "netns": nsKeep}, 201, &keep)
			d.must("PUT", "/v1/ports/gone", map[string]string{"network": "blue", "netns": nsGone}, 201, &gone)
			d.must("PUT", "/v1/ports/gonetap", `{"network":"red","type":"tap"}`, 201, &goneTap)
			d.stop()

			// The desired state loses two ports and a network behind the daemon's back.
			ctx := context.Background()
			st, err := store.Open(filepath.Join(d.stateDir, "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			deleteNetwork := func() error { _, err := st.DeleteNetwork(ctx, "red"); return err }
			for _, err := range []error{st.DeletePort(ctx, "gone", gone.Host), st.DeletePort(ctx, "gonetap", goneTap.Host), deleteNetwork(), st.Close()} {
				if err != nil {
					t.Fatal(err)
				}
			}

			in := func(args ...string) string {
				return testbed.Run(t, "ip", append([]string{"netns", "exec", hostNS}, args...)...)
			}
			// Theirs.
			in("ip", "link", "add", "theirs-br", "type", "bridge")
			in("ip", "link", "add", "theirs-v0", "type", "veth", "peer", "name", "theirs-v1")
			in("ip", "link", "set", "theirs-v0", "master", "theirs-br")
			in("ip", "link", "add", "vnet00decoy0", "type", "bridge") // our name pattern, no mark
			in("ip", "link", "add", "theirs-al", "type", "bridge")
			in("ip", "link", "set", "theirs-al", "alias", "other-tool:port=keep")
			in("nft", "add table inet theirs\nadd chain inet theirs their_forward { type filter hook forward priority 10; policy accept; }\n"+
				"add rule inet theirs their_forward ip daddr 192.0.2.1 drop\nadd table bridge theirs\n"+
				"add chain bridge theirs their_pre { type filter hook prerouting priority 5; policy accept; }\n")
			foreignLinks := []string{"theirs-br", "theirs-v0", "theirs-v1", "vnet00decoy0", "theirs-al"}
			// Ours, made by hand: marked, and named by nothing in the desired state.
			in("ip", "link", "add", "vnetghost01", "type", "bridge")
			in("ip", "link", "set", "vnetghost01", "alias", "ovs-vnet:port=ghost")
			oursByHand := []string{"vnetghost01"}
			if box != nil {
				box.Vsctl(t, "add-br", "br-theirs", "--", "set", "bridge", "br-theirs", "datapath_type=netdev",
					"--", "add-port", "br-theirs", "theirs-p0", "--", "set", "interface", "theirs-p0", "type=internal")
				box.Vsctl(t, "add-port", "br-vnet", "theirs-p1", "--", "set", "interface", "theirs-p1", "type=internal")
				box.Vsctl(t, "add-port", "br-vnet", "ghostp", "--", "set", "interface", "ghostp", "type=internal",
					"external_ids:ovs-vnet-owner=ovs-vnet", "--", "set", "port", "ghostp",
					"external_ids:ovs-vnet-owner=ovs-vnet", "external_ids:ovs-vnet-port=ghost", "external_ids:ovs-vnet-network=blue")
				box.Ofctl(t, "add-flow", "br-theirs", "cookie=0x1234,priority=100,dl_type=0x88b5,actions=drop")
				box.Ofctl(t, "add-flow", "br-vnet", "cookie=0x99,table=0,priority=1,dl_type=0x88b5,actions=drop")
				box.Ofctl(t, "add-flow", "br-vnet", "cookie=0x7604000000630000,table=0,priority=1,dl_type=0x88b6,actions=drop")
				foreignLinks = append(foreignLinks, "theirs-p0", "theirs-p1")
			} else {
				in("ip", "link", "add", "vnbr-0ddba11", "type", "bridge")
				in("ip", "link", "set", "vnbr-0ddba11", "alias", "ovs-vnet:network=ghostnet")
				in("nft", "add chain bridge ovs_vnet port_ghost\nadd counter bridge ovs_vnet spoof_ghost\n")
				oursByHand = append(oursByHand, "vnbr-0ddba11")
			}
			witness := func() string {
				var b strings.Builder
				for _, l := range foreignLinks {
					b.WriteString(in("ip", "-o", "-d", "link", "show", "dev", l))
				}
				b.WriteString(in("nft", "list", "table", "inet", "theirs"))
				b.WriteString(in("nft", "list", "table", "bridge", "theirs"))
				if box != nil {
					b.WriteString(box.Vsctl(t, "list-ports", "br-theirs") + "\n")
					b.WriteString(box.Vsctl(t, "--columns=name,external_ids", "list", "port", "theirs-p0", "theirs-p1") + "\n")
					b.WriteString(testbed.Run(t, "ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", box.Mgmt("br-theirs")))
					b.WriteString(testbed.Run(t, "ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", box.Mgmt("br-vnet"), "cookie=0x99/-1"))
				}
				return b.String()
			}
			before := witness()
			wants := []string{"192.0.2.1", "other-tool:port=keep", "master theirs-br"}
			if box != nil {
				wants = append(wants, "theirs-p0", "cookie=0x1234", "cookie=0x99")
			}
			for _, want := range wants {
				if !strings.Contains(before, want) {
					t.Fatalf("witness lacks %q:\n%s", want, before)
				}
			}

			d.start()

			if after := witness(); after != before {
				t.Errorf("foreign objects changed across GC:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			names := map[string]bool{}
			for _, l := range linksIn(t, hostNS) {
				names[l.Attrs().Name] = true
			}
			for _, l := range append(oursByHand, gone.HostIfname, goneTap.HostIfname, model.BridgeName("vnbr", "red")) {
				if names[l] {
					t.Errorf("link %s of ours survived GC", l)
				}
			}
			for _, l := range linksIn(t, nsGone) {
				if l.Attrs().Name != "lo" {
					t.Errorf("netns of the dropped port still has %s", l.Attrs().Name)
				}
			}
			if box != nil {
				ports := bridgePorts(t, box, hostNS)
				if want := []string{"theirs-p1", keep.HostIfname}; !slices.Equal(ports, slices.Sorted(slices.Values(want))) {
					t.Errorf("br-vnet ports after GC: %q, want %s and theirs-p1", ports, keep.HostIfname)
				}
				flows := box.Ofctl(t, "dump-flows", "br-vnet")
				for _, c := range []string{"cookie=0x7604000000630000", portCookie(gone.Ofport), portCookie(goneTap.Ofport),
					fmt.Sprintf("cookie=%#x,", uint64(0x76)<<56|uint64(2)<<48|uint64(red.ID)<<16)} {
					if strings.Contains(flows, c) {
						t.Errorf("flow %s survived GC", c)
					}
				}
				if !strings.Contains(flows, portCookie(keep.Ofport)) {
					t.Errorf("GC removed the flows of the kept port")
				}
			} else if out := in("nft", "list", "table", "bridge", "ovs_vnet"); strings.Contains(out, "ghost") ||
				strings.Contains(out, "port_gone") || !strings.Contains(out, "port_keep") {
				t.Errorf("bridge ovs_vnet after GC:\n%s", out)
			}
			d.must("GET", "/v1/ports/keep", nil, 200, nil)
			d.must("GET", "/v1/ports/gone", nil, 404, nil)
			ping(t, nsKeep, "10.72.0.1", true)

			// Leave the host as the other tests expect: theirs go by hand.
			d.must("DELETE", "/v1/ports/keep", nil, 204, nil)
			d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
			d.stop()
			in("ip", "link", "del", "vnet00decoy0")
			if box != nil {
				box.Vsctl(t, "del-port", "br-vnet", "theirs-p1")
			}
			assertNothingLeft(t, hostNS, box, d.stateDir, nsKeep, nsGone)
		})
	}
}

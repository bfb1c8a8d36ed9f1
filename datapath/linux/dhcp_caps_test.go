package linux

import (
	"bufio"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// unitFile is the shipped systemd unit (docs/DEPLOY.md).
const unitFile = "../../deploy/systemd/ovs-vnet.service"

// unitSetting is every value of key in the unit's [Service] section, the
// lines added up as systemd does (an empty assignment would reset them;
// the unit has none).
func unitSetting(t *testing.T, key string) []string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var values []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), key+"="); ok {
			values = append(values, strings.Fields(v)...)
		}
	}
	return values
}

// TestDeployUnitDHCP: the unit lets the Linux backend open its DHCP packet
// sockets. Without CAP_NET_RAW in the bounding set or AF_PACKET in the
// address families the socket is refused (EPERM, EAFNOSUPPORT) and no
// port gets DHCP.
func TestDeployUnitDHCP(t *testing.T) {
	if caps := unitSetting(t, "CapabilityBoundingSet"); !slices.Contains(caps, "CAP_NET_RAW") {
		t.Errorf("%s: CapabilityBoundingSet %v has no CAP_NET_RAW", unitFile, caps)
	}
	if families := unitSetting(t, "RestrictAddressFamilies"); !slices.Contains(families, "AF_PACKET") {
		t.Errorf("%s: RestrictAddressFamilies %v has no AF_PACKET", unitFile, families)
	}
}

// TestLinuxDHCPUnitCapabilities runs the backend as the unit runs the
// daemon: a process whose capability bounding set is the unit's, read
// from the file (setpriv, the test binary as an agent). Under it a port's
// client is answered. Without CAP_NET_RAW the ports still attach and
// forward, the backend says why there is no DHCP, and the client gets
// no answer. Witnesses: the frames and pings in the ports' namespaces,
// sent from this process, which keeps every capability.
func TestLinuxDHCPUnitCapabilities(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	_, err := exec.LookPath("setpriv")
	testbed.Need(t, err == nil, "setpriv (util-linux)")
	var unitCaps []string
	for _, c := range unitSetting(t, "CapabilityBoundingSet") {
		unitCaps = append(unitCaps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	if len(unitCaps) == 0 {
		t.Fatalf("%s: no CapabilityBoundingSet", unitFile)
	}
	without := slices.DeleteFunc(slices.Clone(unitCaps), func(c string) bool { return c == "net_raw" })
	for _, tc := range []struct {
		name string
		caps []string
		dhcp bool
	}{
		{"unit", unitCaps, true},
		{"without_net_raw", without, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostBed(t, "vnt-dhc-", time.Minute)
			n := dhcpNetwork(t)
			a, c := h.port("a", "dh", "10.81.0.5"), h.port("c", "dh", "10.81.0.6")
			bounding := "-all,+" + strings.Join(tc.caps, ",+")
			ag := startAgent(t, h.ns, "setpriv", "--bounding-set", bounding)
			ag.must(agentReq{Op: "new", Prefix: "vnbr"})
			ag.must(agentReq{Op: "network", Network: n})
			var resp agentResp
			for _, p := range []model.Port{a, c} {
				if resp, err = ag.do(agentReq{Op: "attach", Network: n, Port: p}); err != nil {
					t.Fatalf("bounding set %s: %v", bounding, err)
				}
			}
			ag.must(agentReq{Op: "prune", State: datapath.State{Networks: []model.Network{n}, Ports: []model.Port{a, c}}})
			h.expect(a.Netns, c.IP.String(), true, "port to port")
			cl, mac := newRawClient(t, a.Netns), macOf(t, a)
			m := discover(t, mac, mac)
			cl.send(request(t, m, mac, netip.IPv4Unspecified(), nil, netip.Addr{}))
			offer, _ := cl.answer(m.TransactionID, 2*time.Second)
			t.Logf("bounding set %s: no_dhcp %q; answer %v", bounding, resp.NoDHCP, offer != nil)
			if tc.dhcp {
				if offer == nil || !offer.YourIPAddr.Equal(a.IP.AsSlice()) || resp.NoDHCP != "" {
					t.Errorf("under the unit's capabilities: answer %v, no_dhcp %q; want an OFFER of %s", offer, resp.NoDHCP, a.IP)
				}
				return
			}
			if offer != nil {
				t.Errorf("without CAP_NET_RAW the DISCOVER was answered: %s", offer.Summary())
			}
			for _, want := range []string{"CAP_NET_RAW", "AF_PACKET"} {
				if !strings.Contains(resp.NoDHCP, want) {
					t.Errorf("no_dhcp %q does not name %s", resp.NoDHCP, want)
				}
			}
		})
	}
}

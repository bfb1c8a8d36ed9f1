package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// bridgeNf is the setting without which the Linux backend's security
// groups judge nothing within a network (docs/OPERATIONS.md, "Linux
// backend"); it is per network namespace.
const bridgeNf = "net.bridge.bridge-nf-call-iptables"

// TestSecurityGroupsNeedBridgeNetfilter: a Linux-backend daemon started
// with bridge-nf-call-iptables off in its namespace refuses security
// groups and ports' groups with 501, naming the setting and how to enable
// it, and creates nothing; one started with it on takes them (201), and
// refuses a group made while it is off and a port guarded. A daemon with a
// guarded port does not get ready with it off, and says why on /readyz,
// until it is on again.
func TestSecurityGroupsNeedBridgeNetfilter(t *testing.T) {
	_, err := os.Stat("/proc/sys/net/bridge")
	testbed.Need(t, err == nil, "br_netfilter loaded (modprobe br_netfilter)")
	hostNS := newNetns(t, "vnt-host-")
	sysctl := func(v string) {
		t.Helper()
		testbed.Run(t, "ip", "netns", "exec", hostNS, "sysctl", "-qw", bridgeNf+"="+v)
	}
	d := startDaemon(t, hostNS, "--backend", "linux", "--bridge", "vnbr")
	d.must("PUT", "/v1/networks/blue", map[string]any{"subnet": "10.98.0.0/24"}, http.StatusCreated, nil)
	d.must("PUT", "/v1/security-groups/x", `{"rules":[]}`, http.StatusCreated, nil)
	nsA, nsB := newNetns(t, "vnt-bnf-"), newNetns(t, "vnt-bnf-")
	portA := map[string]any{"network": "blue", "netns": nsA, "ifname": "eth0"}
	d.must("PUT", "/v1/ports/a", portA, http.StatusCreated, nil)
	d.stop()

	sysctl("0")
	d.start()
	refused := func(what, path string, body any) {
		t.Helper()
		code, resp := d.do("PUT", path, body)
		var e v1.Error
		_ = json.Unmarshal(resp, &e)
		if code != http.StatusNotImplemented || !strings.HasPrefix(e.Error, "not supported: ") ||
			!strings.Contains(e.Error, bridgeNf+" is 0") || !strings.Contains(e.Error, "modprobe br_netfilter; sysctl -w "+bridgeNf+"=1") {
			t.Errorf("%s with %s=0: %d %s, want 501 naming the setting and how to enable it", what, bridgeNf, code, resp)
		}
	}
	refused("a new group", "/v1/security-groups/y", `{"rules":[]}`)
	portB := map[string]any{"network": "blue", "netns": nsB, "ifname": "eth0", "security_groups": []string{"x"}}
	refused("a new port with groups", "/v1/ports/b", portB)
	portA["security_groups"] = []string{"x"}
	refused("a port's groups changed", "/v1/ports/a", portA)
	var groups v1.SecurityGroupList
	d.must("GET", "/v1/security-groups", nil, http.StatusOK, &groups)
	var a v1.Port
	d.must("GET", "/v1/ports/a", nil, http.StatusOK, &a)
	if len(groups.SecurityGroups) != 1 || len(a.SecurityGroups) != 0 {
		t.Errorf("after the refusals: groups %+v, port a's groups %v", groups.SecurityGroups, a.SecurityGroups)
	}
	if code, _ := d.do("GET", "/v1/ports/b", nil); code != http.StatusNotFound {
		t.Errorf("GET port b after its refusal: %d, want 404", code)
	}
	if links := linksIn(t, nsB); len(links) != 1 {
		t.Errorf("port b's namespace holds %d links after the refusal, want lo alone", len(links))
	}
	if n := strings.Count(d.log.String(), "security groups not offered"); n != 1 {
		t.Errorf("the daemon warned %d times that it offers no security groups, want once:\n%s", n, d.log)
	}
	d.stop()

	sysctl("1")
	d.start()
	d.must("PUT", "/v1/security-groups/y", `{"rules":[]}`, http.StatusCreated, nil)
	d.must("PUT", "/v1/ports/b", portB, http.StatusCreated, nil)
	// Switched off while b is guarded: a change of groups is refused.
	sysctl("0")
	refused("a group made while b is guarded", "/v1/security-groups/z", `{"rules":[]}`)
	if code, _ := d.do("GET", "/v1/security-groups/z", nil); code != http.StatusNotFound {
		t.Errorf("GET group z after its refusal: %d, want 404", code)
	}
	sysctl("1")
	d.stop()

	// With b guarded, a start with the setting off fails closed.
	sysctl("0")
	d.launch()
	waitFor(t, "/readyz to name the setting", func() bool {
		code, resp := d.do("GET", "/readyz", nil)
		return code == http.StatusServiceUnavailable && strings.Contains(string(resp), bridgeNf+" is 0")
	})
	sysctl("1")
	waitFor(t, "the daemon ready once the setting is on", func() bool {
		code, _ := d.do("GET", "/readyz", nil)
		return code == http.StatusOK
	})
	for _, path := range []string{"/v1/ports/a", "/v1/ports/b", "/v1/security-groups/x", "/v1/security-groups/y", "/v1/networks/blue"} {
		d.must("DELETE", path, nil, http.StatusNoContent, nil)
	}
	d.stop()
	assertNothingLeft(t, hostNS, nil, d.stateDir, nsA, nsB)
}

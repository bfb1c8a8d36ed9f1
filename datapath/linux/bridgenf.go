package linux

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// bridgeNfSysctl sends IPv4 bridged within one bridge through the inet
// hooks, where the security groups' table judges it (policy_nft.go).
// Without it a network's ports reach each other unjudged, with no error
// and no count. The setting is per network namespace and applies to every
// bridge in it, other tools' too: the daemon only reads it, and an
// operator sets it.
const bridgeNfSysctl = "net.bridge.bridge-nf-call-iptables"

// bridgeNfEnable is how an operator enables it.
const bridgeNfEnable = "modprobe br_netfilter; sysctl -w " + bridgeNfSysctl + "=1"

// bridgeNetfilter reads bridgeNfSysctl under proc (/proc, or a test's
// stand-in) and says why bridged IPv4 skips the inet hooks, or nil. The
// value is that of the calling thread's network namespace: the one this
// backend acts on (see Backend).
func bridgeNetfilter(proc string) error {
	path := filepath.Join(proc, "sys", filepath.FromSlash(strings.ReplaceAll(bridgeNfSysctl, ".", "/")))
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s is absent (br_netfilter is not loaded), so traffic within a network would pass unjudged; enable it: %s", bridgeNfSysctl, bridgeNfEnable)
	case err != nil:
		return fmt.Errorf("read %s: %w", bridgeNfSysctl, err)
	}
	if v := strings.TrimSpace(string(data)); v != "1" {
		return fmt.Errorf("%s is %s in the daemon's network namespace, so traffic within a network would pass unjudged; enable it: %s", bridgeNfSysctl, v, bridgeNfEnable)
	}
	return nil
}

// judgeable refuses a policy that guards a port of this host while
// bridged traffic skips the inet hooks: the groups would promise a filter
// that nothing applies within a network.
func (b *Backend) judgeable(p model.Policy) error {
	guards := false
	for port := range p.Ports {
		guards = guards || p.Guarded(port)
	}
	if !guards {
		return nil
	}
	if err := bridgeNetfilter(b.proc); err != nil {
		return fmt.Errorf("%w: %w", datapath.ErrUnsupported, err)
	}
	return nil
}

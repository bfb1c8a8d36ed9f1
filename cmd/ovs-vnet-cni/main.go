// Command ovs-vnet-cni is the CNI plugin of ovs-vnet: the runtime runs it
// with CNI_COMMAND and a network configuration, and it asks the daemon's
// REST API to attach or detach the container (docs/CNI.md). The logic lives
// in package cni; this is the wiring.
package main

import (
	"os"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/ovs-vnet/ovs-vnet/cni"
)

func main() {
	p := cni.New(os.Stdout)
	skel.PluginMainFuncs(p.Funcs(), cni.Versions(), "CNI plugin ovs-vnet-cni "+buildVersion())
}

// buildVersion is the module version, or the VCS revision of a build from a
// checkout, for the line the plugin prints when run without CNI_COMMAND.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return "devel"
}

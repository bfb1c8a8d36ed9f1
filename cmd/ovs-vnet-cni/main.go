// Command ovs-vnet-cni is the CNI plugin of ovs-vnet: the runtime runs it
// with CNI_COMMAND and a network configuration, and it asks the daemon's
// REST API to attach or detach the container (docs/CNI.md). The logic lives
// in package cni; this is the wiring.
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/ovs-vnet/ovs-vnet/cni"
	"github.com/ovs-vnet/ovs-vnet/internal/buildinfo"
)

func main() {
	p := cni.New(os.Stdout)
	skel.PluginMainFuncs(p.Funcs(), cni.Versions(), "CNI plugin ovs-vnet-cni "+buildinfo.Version())
}

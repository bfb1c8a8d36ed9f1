package link

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestDeleteLeavesForeignLink: Delete of a port's link whose name another
// tool's device holds (a tap of `ip tuntap add`, untagged or tagged for
// another port) succeeds — nothing of the port's is there — and leaves that
// device alone; the port's own link is deleted, a missing one is success.
func TestDeleteLeavesForeignLink(t *testing.T) {
	ns := testbed.Netns(t, "vnt-del-")
	testbed.Run(t, "ip", "-n", ns, "tuntap", "add", "dev", "vnt-foreign", "mode", "tap")
	testbed.Run(t, "ip", "-n", ns, "tuntap", "add", "dev", "vnt-other", "mode", "tap")
	testbed.Run(t, "ip", "-n", ns, "link", "set", "vnt-other", "alias", datapath.PortAlias("other"))
	testbed.Run(t, "ip", "-n", ns, "tuntap", "add", "dev", "vnt-ours", "mode", "tap")
	testbed.Run(t, "ip", "-n", ns, "link", "set", "vnt-ours", "alias", datapath.PortAlias("vm"))
	err := testbed.InNetns(ns, func() error {
		for _, name := range []string{"vnt-foreign", "vnt-other", "vnt-ours", "vnt-missing"} {
			if err := Delete(name, datapath.PortAlias("vm")); err != nil {
				t.Errorf("Delete(%s): %v", name, err)
			}
		}
		for name, want := range map[string]bool{"vnt-foreign": true, "vnt-other": true, "vnt-ours": false} {
			if _, err := netlink.LinkByName(name); (err == nil) != want {
				t.Errorf("%s: exists %v after Delete, want %v", name, err == nil, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

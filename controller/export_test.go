package controller

import (
	"net/netip"

	"github.com/ovs-vnet/ovs-vnet/datapath/nsfile"
)

// The tests of package controller_test drive the controller through its
// HTTP API (httpapi), which an internal test could not import without a
// cycle; these let them look at what the API does not show.

// HoldLock holds the state lock, as a change that waits on the datapath
// does, until the returned func is called.
func (c *Controller) HoldLock() (unlock func()) {
	c.mu.Lock()
	return c.mu.Unlock
}

// NetnsID is the namespace remembered for port name.
func (c *Controller) NetnsID(name string) (nsfile.ID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.netnsIDs[name]
	return id, ok
}

// Reserve takes ip of network's pool for owner.
func (c *Controller) Reserve(network string, ip netip.Addr, owner string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pools[network].Reserve(ip, owner)
}

package ovsdb

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestPortStatisticsCountTraffic: pings between two ports of a bridge show
// up in the cache's Interface statistics within one refresh of
// ovs-vswitchd's (stats-update-interval: 5 s by default, the minimum).
func TestPortStatisticsCountTraffic(t *testing.T) {
	s := sb
	c := dial(t, s)
	ctx := testContext(t)
	const br = "br-stats"
	delBridge(t, s, br)
	// standalone: the bridge forwards by NORMAL without any flow of ours.
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: br, DatapathType: "netdev", FailMode: "standalone"}); err != nil {
		t.Fatal(err)
	}
	ports := []string{"vnt-sta", "vnt-stb"}
	hosts := make([]string, len(ports))
	for i, name := range ports {
		hosts[i] = testbed.UniqueName("vnt-st-")
		testbed.Run(t, "ip", "netns", "add", hosts[i])
		t.Cleanup(func() {
			// Deleting the namespace deletes the veth pair with it.
			if out, err := exec.Command("ip", "netns", "del", hosts[i]).CombinedOutput(); err != nil {
				t.Errorf("ip netns del: %v: %s", err, out)
			}
		})
		if _, err := s.ip("link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", hosts[i]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ip("link", "set", name, "up"); err != nil {
			t.Fatal(err)
		}
		testbed.Run(t, "ip", "-n", hosts[i], "addr", "add", fmt.Sprintf("10.97.0.%d/24", i+1), "dev", "eth0")
		testbed.Run(t, "ip", "-n", hosts[i], "link", "set", "eth0", "up")
		if err := c.AddPort(ctx, br, PortSpec{Name: name, ExternalIDs: map[string]string{"vnet-port": name}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitOfport(ctx, name); err != nil {
			t.Fatal(err)
		}
	}

	before := statsByName(t, c, br)
	const pings = 5
	testbed.Run(t, "ip", "netns", "exec", hosts[0], "ping", "-c", fmt.Sprint(pings), "-i", "0.1", "-W", "1", "10.97.0.2")
	// An echo request or reply: 56 bytes of data, ICMP 8, IPv4 20, Ethernet 14.
	const frame = 56 + 8 + 20 + 14
	rose := func(now map[string]PortStatistics, port, key string, min uint64) bool {
		return now[port].Counter(key)-before[port].Counter(key) >= min
	}
	start := time.Now()
	deadline := start.Add(7 * time.Second)
	for {
		now := statsByName(t, c, br)
		// rx: what the port's namespace sent into the bridge; tx: what it got.
		if rose(now, ports[0], "rx_packets", pings) && rose(now, ports[0], "rx_bytes", pings*frame) &&
			rose(now, ports[0], "tx_packets", pings) && rose(now, ports[1], "tx_packets", pings) &&
			rose(now, ports[1], "tx_bytes", pings*frame) && rose(now, ports[1], "rx_packets", pings) {
			t.Logf("statistics counted the pings after %v: %s %v", time.Since(start).Round(time.Millisecond), ports[0], now[ports[0]].Statistics)
			if now[ports[0]].Ofport <= 0 || now[ports[0]].ExternalIDs["vnet-port"] != ports[0] {
				t.Errorf("port row = %+v", now[ports[0]].Port)
			}
			if got := now[ports[0]].Counter("no_such_counter"); got != 0 {
				t.Errorf("absent counter = %d", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 7 s the cache shows before %v, now %v", before, now)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func statsByName(t *testing.T, c *Client, br string) map[string]PortStatistics {
	t.Helper()
	rows, err := c.PortStatistics(testContext(t), br)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]PortStatistics{}
	for _, r := range rows {
		out[r.Name] = r
	}
	return out
}

func TestPortStatisticsDisconnected(t *testing.T) {
	c := dial(t, sb)
	c.Close()
	if _, err := c.PortStatistics(testContext(t), "br-none"); err == nil {
		t.Fatal("PortStatistics on a closed client succeeded")
	}
}

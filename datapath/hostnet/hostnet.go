// Package hostnet changes the host's own IP stack the way both backends need
// for routing and masquerade: it loads nftables scripts into ovs-vnet's own
// tables and turns on IPv4 forwarding.
package hostnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Table is the name of every nftables table ovs-vnet writes (one per family
// it needs). Everything in them is ours; nothing outside them is ever read or
// changed.
const Table = "ovs_vnet"

// PolicyTable is the Linux backend's table of security groups, `inet
// ovs_vnet_sg`: apart from Table's inet table, which is rendered whole on
// every network or router change and would wipe the groups' address sets,
// whose elements change one by one over netlink.
const PolicyTable = "ovs_vnet_sg"

// NATTable is both backends' table of floating IPs and port forwards, `ip
// ovs_vnet_nat` (datapath/natnft): apart from Table's, which each backend
// renders on network changes, so that a forward's change rewrites only it.
const NATTable = "ovs_vnet_nat"

// ApplyNft loads an nft script as one transaction: all of it lands or none.
func ApplyNft(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft -f: %w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

const ipForward = "/proc/sys/net/ipv4/ip_forward"

// EnableForwarding turns on IPv4 forwarding in the current network namespace,
// which masquerade needs (the host routes the networks' traffic out, and the
// replies back in) and so does routing on the Linux backend. It is left on
// when ovs-vnet stops, as the networks keep working without the daemon; our
// nftables forward chain keeps everything else that the host now could
// forward between ovs-vnet's interfaces out.
func EnableForwarding() error {
	cur, err := os.ReadFile(ipForward)
	if err != nil {
		return fmt.Errorf("read %s: %w", ipForward, err)
	}
	if strings.TrimSpace(string(cur)) == "1" {
		return nil
	}
	if err := os.WriteFile(ipForward, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}

// ErrNotExist means the nftables object asked for (usually our table, before
// anything was written to it) does not exist.
var ErrNotExist = errors.New("nftables object does not exist")

// ListNft runs `nft -j list ARGS...` and returns its JSON. A missing object is
// ErrNotExist, so that callers can treat "nothing of ours there yet" as empty.
func ListNft(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "nft", append([]string{"-j", "list"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(stderr.Bytes())
		if bytes.Contains(msg, []byte("No such file or directory")) {
			return nil, fmt.Errorf("nft list %s: %w", strings.Join(args, " "), ErrNotExist)
		}
		return nil, fmt.Errorf("nft list %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

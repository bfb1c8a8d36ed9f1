package linux

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBridgeNetfilter reads the setting under a stand-in for /proc: only 1
// lets bridged traffic be judged, and a refusal names the setting and how
// to enable it.
func TestBridgeNetfilter(t *testing.T) {
	for _, c := range []struct {
		name  string
		value *string // nil: absent, as without br_netfilter
		want  string  // "" for nil
	}{
		{"absent", nil, "net.bridge.bridge-nf-call-iptables is absent (br_netfilter is not loaded)"},
		{"off", ptr("0\n"), "net.bridge.bridge-nf-call-iptables is 0"},
		{"on", ptr("1\n"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			proc := t.TempDir()
			if c.value != nil {
				dir := filepath.Join(proc, "sys", "net", "bridge")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "bridge-nf-call-iptables"), []byte(*c.value), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := bridgeNetfilter(proc)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want == "":
			case err == nil:
				t.Errorf("accepted, want %q", c.want)
			case !strings.HasPrefix(err.Error(), c.want) || !strings.HasSuffix(err.Error(), "enable it: modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1"):
				t.Errorf("refused with %q, want it to start %q and say how to enable it", err, c.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

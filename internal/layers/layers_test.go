package layers

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const module = "github.com/ovs-vnet/ovs-vnet/"

func TestImportRules(t *testing.T) {
	apiUser := []string{"model", "flows/", "datapath", "controller", "httpapi"}
	for _, tc := range []struct {
		pkg       string
		forbidden []string // package path prefixes, relative to the module
	}{
		{"api/v1", []string{""}},
		{"client", apiUser},
		{"cli", apiUser},
		{"cni", apiUser},
		{"cmd/vnetctl", apiUser},
		{"cmd/ovs-vnet-cni", apiUser},
		{"datapath", []string{"flows/", "datapath/"}},
		{"flows/flowset", []string{"flows/reconcile", "flows/pipeline"}},
		{"flows/pipeline", []string{"flows/reconcile"}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "go", "list", "-deps", "../../"+tc.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tc.pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				rel, ours := strings.CutPrefix(dep, module)
				if !ours || rel == tc.pkg {
					continue
				}
				for _, f := range tc.forbidden {
					if strings.HasPrefix(rel, f) {
						t.Errorf("%s links %s (no %q allowed: internal/layers/doc.go)", tc.pkg, rel, f)
					}
				}
			}
		})
	}
}

// TestDaemonMainOnlyWires: the daemon's main package imports no flows/
// package itself; the OVS backend builds what it needs of them.
func TestDaemonMainOnlyWires(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-f", `{{join .Imports "\n"}}`, "../../cmd/ovs-vnet").Output()
	if err != nil {
		t.Fatalf("go list cmd/ovs-vnet: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.HasPrefix(imp, module+"flows/") {
			t.Errorf("cmd/ovs-vnet imports %s (internal/layers/doc.go)", imp)
		}
	}
}

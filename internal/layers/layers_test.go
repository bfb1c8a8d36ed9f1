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
	// Packages written for tests only: no binary links them.
	testOnly := []string{"controller/controllertest", "flows/flowset/flowsettest", "internal/testbed", "internal/golden", "internal/testpki"}
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
		{"flows/reconcile", []string{"flows/pipeline"}},
		{"controller", []string{"httpapi"}},
		{"cmd/ovs-vnet", testOnly},
		{"cmd/vnetctl", testOnly},
		{"cmd/ovs-vnet-cni", testOnly},
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

// TestDirectImports: what a package may not import itself, though it links
// it through others — the daemon's main wires and imports no flows/ package
// (the OVS backend builds its flow machinery); the controller core speaks
// no HTTP (httpapi does).
func TestDirectImports(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden []string // import paths, relative to the module when not standard
	}{
		{"cmd/ovs-vnet", []string{module + "flows/"}},
		{"controller", []string{"net/http"}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "go", "list", "-f", `{{join .Imports "\n"}}`, "../../"+tc.pkg).Output()
			if err != nil {
				t.Fatalf("go list %s: %v", tc.pkg, err)
			}
			for _, imp := range strings.Fields(string(out)) {
				for _, f := range tc.forbidden {
					if strings.HasPrefix(imp, f) {
						t.Errorf("%s imports %s (internal/layers/doc.go)", tc.pkg, imp)
					}
				}
			}
		})
	}
}

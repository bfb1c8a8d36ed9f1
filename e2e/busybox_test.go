package e2e

import (
	"debug/elf"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// busyboxStatic is where Debian's busybox-static puts the one binary the
// containers' root file system holds (docs/CNI.md copies it from there).
const busyboxStatic = "/bin/busybox"

// needStaticBusybox gives the test up (testbed.Need) unless busyboxStatic is
// an ELF executable without an interpreter: the root file system of the
// test's containers holds nothing else, no libraries.
func needStaticBusybox(t *testing.T) {
	t.Helper()
	static := false
	if f, err := elf.Open(busyboxStatic); err == nil {
		static = !slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
	}
	testbed.Need(t, static, busyboxStatic+" statically linked: apt-get install busybox-static (hack/install-deps.sh)")
}

// busyboxRootfs is a root file system of busybox-static and the applets the
// tests run, made by docs/CNI.md's recipe as written, in a directory of the
// test's own.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	needStaticBusybox(t)
	dir := t.TempDir()
	cmd := exec.Command("sh", "-ec", docsCNIExample(t, "sh", "rootfs/bin"))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docs/CNI.md's busybox root file system recipe: %v\n%s", err, out)
	}
	return filepath.Join(dir, "rootfs")
}

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/cni"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// criTools are the binaries TestContainerd drives containerd with.
type criTools struct {
	containerd, ctr, crictl string
}

// needCRITools finds containerd, ctr, crictl and a static busybox (the
// pause image's one binary), or gives the test up (testbed.Need).
func needCRITools(t *testing.T) criTools {
	t.Helper()
	look := func(name, how string) string {
		path, err := exec.LookPath(name)
		testbed.Need(t, err == nil, name+" ("+how+")")
		return path
	}
	tools := criTools{
		containerd: look("containerd", "apt-get install containerd: hack/install-deps.sh"),
		ctr:        look("ctr", "apt-get install containerd: hack/install-deps.sh"),
		crictl:     look("crictl", "hack/install-crictl.sh, which hack/install-deps.sh runs"),
	}
	needStaticBusybox(t) // the pause image's one binary
	return tools
}

// TestContainerd is issue 19's containerd acceptance: containerd (Debian
// 12's 1.6) driven through its CRI with crictl, configured with
// docs/CNI.md's conflist as written, on each backend. A pod sandbox gets its
// port, in the sandbox's namespace with the address the CRI reports, and
// reaches its gateway; stopping it removes the port, and removing it leaves
// no pod, no namespace, no host link or OVS port.
func TestContainerd(t *testing.T) {
	tools := needCRITools(t)
	bins := buildCNI(t)
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) { runContainerd(t, tools, bins, bc) })
	}
}

func runContainerd(t *testing.T, tools criTools, bins cniBins, bc backendCase) {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	sock := filepath.Join(t.TempDir(), "api.sock")
	d := startSocketDaemon(t, hostNS, sock, args...)
	d.must("PUT", "/v1/networks/blue", `{"subnet":"10.75.0.0/24"}`, 201, nil)
	confDir, binDir := containerdCNI(t, bins, sock)
	c := startContainerd(t, tools, confDir, binDir)

	id, sb := c.runPod(t)
	var port portView
	d.must("GET", "/v1/ports/"+cni.PortName(id, "eth0"), nil, 200, &port)
	if port.Network != "blue" || port.Netns != sb.netns || port.Ifname != "eth0" || strings.Split(port.IP, "/")[0] != sb.ip {
		t.Fatalf("port of sandbox %s (netns %s, ip %s): %+v", id, sb.netns, sb.ip, port)
	}
	ns := filepath.Base(sb.netns) // containerd makes it under /var/run/netns, as ip netns does
	checkNamespaceEnd(t, ns, "eth0", port)
	ping(t, ns, port.Gateway, true)

	c.crictl(t, "stopp", id)
	if st := c.inspect(t, id); st.state != "SANDBOX_NOTREADY" {
		t.Fatalf("sandbox %s stopped: state %s", id, st.state)
	}
	d.must("GET", "/v1/ports/"+port.Name, nil, 404, nil)
	c.crictl(t, "rmp", id)
	if pods := c.crictl(t, "pods", "-q"); pods != "" {
		t.Fatalf("pods left after rmp: %s", pods)
	}
	if _, err := os.Stat(sb.netns); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sandbox netns %s left after rmp: %v", sb.netns, err)
	}

	d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
	d.stop()
	assertNothingLeft(t, hostNS, box, d.stateDir)
}

// TestContainerdHostPort is issue 21's CRI acceptance: a pod sandbox's
// hostPort, run by containerd with docs/CNI.md's conflist, reaches the
// sandbox from outside and from the host through the plugin's port
// forward, which stopping the sandbox removes.
func TestContainerdHostPort(t *testing.T) {
	tools := needCRITools(t)
	bins := buildCNI(t)
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, _ := bc.setup(t, hostNS)
			sock := filepath.Join(t.TempDir(), "api.sock")
			d := startSocketDaemon(t, hostNS, sock, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.75.0.0/24"}`, 201, nil)
			outNS := newOutside(t, hostNS)
			confDir, binDir := containerdCNI(t, bins, sock)
			c := startContainerd(t, tools, confDir, binDir)

			id, sb := c.runPod(t, map[string]any{"container_port": 8080, "host_port": 18081}) // protocol 0: TCP
			serveWho(t, sb.netns, []uint16{8080}, nil)
			published := addrPort(natHost, 18081)
			runNATProbes(t, "hostPort 18081", []natProbe{
				{what: "outside → host:18081", ns: outNS, proto: "tcp", to: published, want: outsideIP},
				{what: "host → host:18081", ns: hostNS, proto: "tcp", to: published, want: hostOutsideIP},
			})
			name := cni.ForwardName(id, "eth0", "tcp", "", 18081)
			d.must("GET", "/v1/port-forwards/"+name, nil, 200, nil)

			c.crictl(t, "stopp", id)
			d.must("GET", "/v1/port-forwards/"+name, nil, 404, nil)
			runNATProbes(t, "sandbox stopped", []natProbe{{what: "outside → host:18081", ns: outNS, proto: "tcp", to: published}})
		})
	}
}

// containerdCNI is docs/CNI.md's conflist as newCNIEnvFromDocs adapts it,
// in a configuration directory of its own, and a plugin directory holding
// every plugin it names and loopback, which containerd runs for each
// sandbox's lo: containerd takes one directory of each.
func containerdCNI(t *testing.T, bins cniBins, sock string) (confDir, binDir string) {
	t.Helper()
	configs := docsCNIConfigs(t) // which fails without a conflist
	dc := configs[slices.IndexFunc(configs, func(dc docsCNIConfig) bool { return dc.conf["plugins"] != nil })]
	e := newCNIEnvFromDocs(t, bins, dc, sock, unusedTokenFile(t))
	binDir = t.TempDir()
	plugins := []string{"loopback"}
	for _, p := range dc.conf["plugins"].([]any) {
		plugins = append(plugins, p.(map[string]any)["type"].(string))
	}
	for _, typ := range plugins {
		dir := bins.pluginDir
		if typ != "ovs-vnet-cni" {
			dir = cniPluginDir(t, dc.where, typ)
		}
		if err := os.Symlink(filepath.Join(dir, typ), filepath.Join(binDir, typ)); err != nil {
			t.Fatal(err)
		}
	}
	return e.confDir, binDir
}

// pauseImage is the sandbox image the test imports: no registry is needed.
const pauseImage = "localhost/ovs-vnet-e2e-pause:1"

// containerd is a private containerd: its configuration, state, sockets,
// runc state and pods' cgroups are the test's own, and everything it
// leaves is removed at cleanup. Only what containerd 1.6 puts in fixed
// places is outside dir: the sandboxes' namespaces under /var/run/netns
// (where the daemon, in its own mount namespace, sees them), the shims'
// sockets under /run/containerd/s and libcni's cache in /var/lib/cni.
type containerd struct {
	tools  criTools
	dir    string
	sock   string
	cgroup string // the pods' cgroup parent
	cmd    *exec.Cmd
	log    *testbed.SyncBuffer
	// made is what of /run/containerd this test made, to remove if empty;
	// pods the sandboxes run, and netns their namespaces, to remove what
	// containerd did not.
	made, pods, netns []string
}

// containerdConfig is containerd's configuration. The opt plugin is off:
// it would make /opt/containerd. The native snapshotter copies the image
// (one file) and needs nothing of the file system under dir. runc's state
// goes under dir too (runtime_type must then be said again).
// restrict_oom_score_adj is for machines where containerd runs without
// CAP_SYS_RESOURCE (in a container, as the project's test machine): no
// process there may lower its oom_score_adj, and runc fails to start a
// sandbox, whose score the CRI sets to -998, with "can't get final child's
// PID from pipe". It keeps the score at containerd's own; elsewhere it
// changes nothing the test looks at.
const containerdConfig = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
disabled_plugins = ["io.containerd.internal.v1.opt"]
[grpc]
  address = "%[2]s"
[ttrpc]
  address = "%[2]s.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[3]s"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "%[1]s/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "%[4]s"
    bin_dir = "%[5]s"
`

// startContainerd starts containerd with the CNI configuration of confDir
// and the plugins of binDir, and imports the pause image.
func startContainerd(t *testing.T, tools criTools, confDir, binDir string) *containerd {
	t.Helper()
	// A unix socket's path has room for about 100 bytes: t.TempDir's may not.
	dir, err := os.MkdirTemp("", "vnt-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	c := &containerd{tools: tools, dir: dir, sock: filepath.Join(dir, "containerd.sock"),
		cgroup: filepath.Base(dir), log: &testbed.SyncBuffer{}}
	for _, d := range []string{"/run/containerd", "/run/containerd/s"} {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			c.made = append(c.made, d)
		}
	}
	config := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, fmt.Appendf(nil, containerdConfig, dir, c.sock, pauseImage, confDir, binDir), 0o644); err != nil {
		t.Fatal(err)
	}
	// crictl reads /etc/crictl.yaml unless given a file: an empty one.
	if err := os.WriteFile(filepath.Join(dir, "crictl.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(tools.containerd, "--config", config)
	// containerd passes its environment on to the plugins, and their
	// standard error into its log.
	c.cmd.Env = append(cleanEnv(), quickRaceExit())
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(func() {
		c.stop(t)
		testbed.CheckRace(t, "ovs-vnet-cni (in containerd's log)", c.log.String(), nil)
		if t.Failed() {
			t.Logf("containerd log:\n%s", c.log)
		}
	})
	waitFor(t, "containerd answers crictl version", func() bool {
		_, err := c.run("version")
		return err == nil
	})
	image := filepath.Join(dir, "pause.tar")
	writePauseImage(t, image, busyboxRootfs(t))
	testbed.Run(t, tools.ctr, "-a", c.sock, "-n", "k8s.io", "images", "import", "--snapshotter", "native", image)
	return c
}

// run runs crictl against c and returns its standard output, trimmed.
func (c *containerd) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := append([]string{"--config", filepath.Join(c.dir, "crictl.yaml"),
		"-r", "unix://" + c.sock, "-i", "unix://" + c.sock, "-t", "30s"}, args...)
	cmd := exec.CommandContext(ctx, c.tools.crictl, all...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("crictl %s: %v: %s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

func (c *containerd) crictl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sandbox is what `crictl inspectp` says of a pod sandbox.
type sandbox struct {
	state, ip, netns string
}

func (c *containerd) inspect(t *testing.T, id string) sandbox {
	t.Helper()
	var raw struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct{ Type, Path string } `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	out := c.crictl(t, "inspectp", "-o", "json", id)
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("crictl inspectp %s: %v\n%s", id, err, out)
	}
	sb := sandbox{state: raw.Status.State, ip: raw.Status.Network.IP}
	for _, ns := range raw.Info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			sb.netns = ns.Path
		}
	}
	return sb
}

// runPod runs a pod sandbox and returns its id and what inspectp says of it
// once ready.
func (c *containerd) runPod(t *testing.T, portMappings ...map[string]any) (string, sandbox) {
	t.Helper()
	name := testbed.UniqueName("vnt-pod-")
	config := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "default", "uid": name},
		"log_directory": filepath.Join(c.dir, "logs"),
		"linux":         map[string]any{"cgroup_parent": "/" + c.cgroup},
	}
	if len(portMappings) > 0 {
		config["port_mappings"] = portMappings // the CRI's hostPort
	}
	pod, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(c.dir, name+".json")
	if err := os.WriteFile(file, pod, 0o644); err != nil {
		t.Fatal(err)
	}
	id := c.crictl(t, "runp", file)
	c.pods = append(c.pods, id)
	sb := c.inspect(t, id)
	if sb.netns != "" {
		c.netns = append(c.netns, sb.netns)
	}
	if sb.state != "SANDBOX_READY" || !strings.HasPrefix(sb.netns, "/var/run/netns/") || sb.ip == "" {
		t.Fatalf("sandbox %s: %+v, want ready with an address, in a namespace under /var/run/netns", id, sb)
	}
	return id, sb
}

// stop removes the pods, stops containerd by its PID, and removes what it
// leaves: its shims and containers if they outlived it, its mounts under
// dir, the sandboxes' namespaces, shim sockets and CNI cache files, the
// pods' cgroups and what it made of /run/containerd.
func (c *containerd) stop(t *testing.T) {
	if _, err := c.run("rmp", "--force", "--all"); err != nil {
		t.Errorf("remove the pods at cleanup: %v", err)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Errorf("containerd did not stop within 15s of SIGTERM")
		_ = c.cmd.Process.Kill()
		<-done
	}
	left := c.leftProcesses()
	for _, pid := range left {
		t.Errorf("process %d of containerd left: killed", pid)
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	for _, pid := range left {
		// Gone once its /proc entry is: then its cgroup can go, too.
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
		}
	}
	for _, id := range c.pods {
		// A shim killed leaves its socket, named as containerd 1.6 names it
		// (runtime/v2/shim.SocketAddress).
		sock := fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(filepath.Join(c.sock, "k8s.io", id))))
		if err := os.Remove(sock); err == nil {
			t.Errorf("shim socket %s of sandbox %s left: removed", sock, id)
		}
		// libcni's cache of a sandbox not torn down (its conflist's files
		// go with cleanCNICache): loopback's.
		cached, _ := filepath.Glob(filepath.Join(cniCacheDir, "results", "*-"+id+"-*"))
		for _, f := range cached {
			t.Errorf("CNI cache file %s of sandbox %s left: removed", f, id)
			_ = os.Remove(f)
		}
	}
	for _, mnt := range mountsUnder(c.dir) {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	}
	for _, ns := range c.netns {
		if _, err := os.Stat(ns); err == nil {
			t.Errorf("sandbox netns %s left: removed", ns)
			_ = unix.Unmount(ns, unix.MNT_DETACH)
			_ = os.Remove(ns)
		}
	}
	for _, cg := range c.cgroups() {
		// A pod's cgroup runc left (it removes its own on delete) first.
		pods, _ := filepath.Glob(filepath.Join(cg, "*", "cgroup.procs"))
		for _, p := range pods {
			_ = os.Remove(filepath.Dir(p))
		}
		if err := os.Remove(cg); err != nil {
			t.Errorf("remove cgroup %s: %v", cg, err)
		}
	}
	for i := len(c.made) - 1; i >= 0; i-- {
		if err := os.Remove(c.made[i]); err != nil {
			t.Errorf("remove %s, which the test's containerd made: %v", c.made[i], err)
		}
	}
}

// leftProcesses are the processes c's containerd started that outlived it:
// its shims, which name its socket, and the sandboxes' processes, in the
// pods' cgroups.
func (c *containerd) leftProcesses() []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p)
		if slices.Contains(strings.Split(string(cmdline), "\x00"), c.sock) {
			pids = append(pids, pidOf(filepath.Base(filepath.Dir(p))))
		}
	}
	for _, cg := range c.cgroups() {
		lists, _ := filepath.Glob(filepath.Join(cg, "*", "cgroup.procs"))
		for _, l := range lists {
			raw, _ := os.ReadFile(l)
			for _, f := range strings.Fields(string(raw)) {
				pids = append(pids, pidOf(f))
			}
		}
	}
	slices.Sort(pids)
	return slices.DeleteFunc(slices.Compact(pids), func(pid int) bool { return pid <= 0 })
}

// cgroups are the pods' cgroup parent's directories: one, directly under
// /sys/fs/cgroup, with unified cgroups (cgroup v2, Debian 12's default); one
// in each controller's hierarchy, /sys/fs/cgroup/*/, with hybrid or v1
// cgroups.
func (c *containerd) cgroups() []string {
	var dirs []string
	for _, pattern := range []string{"/sys/fs/cgroup/" + c.cgroup, "/sys/fs/cgroup/*/" + c.cgroup} {
		found, _ := filepath.Glob(pattern)
		dirs = append(dirs, found...)
	}
	return dirs
}

// pidOf is the process id s names, or 0.
func pidOf(s string) int {
	pid, _ := strconv.Atoi(s)
	return pid
}

// mountsUnder lists the mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for line := range strings.SplitSeq(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			// The mount point's spaces and the like are octal escapes.
			mnt := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[4])
			if strings.HasPrefix(mnt, dir+"/") {
				out = append(out, mnt)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// writePauseImage writes to path, as `docker save` would, an image of one
// layer, the root file system rootfs, whose entrypoint sleeps: what a pod
// sandbox's pause container needs to do.
func writePauseImage(t *testing.T, path, rootfs string) {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.AddFS(os.DirFS(rootfs)); err != nil {
		t.Fatalf("pause image layer of %s: %v", rootfs, err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/bin/busybox", "sleep", "86400"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{fmt.Sprintf("sha256:%x", sha256.Sum256(layer.Bytes()))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{pauseImage}, "Layers": []string{"layer.tar"}}})
	if err != nil {
		t.Fatal(err)
	}
	var image bytes.Buffer
	tw = tar.NewWriter(&image)
	for _, f := range []struct {
		name string
		body []byte
	}{{"layer.tar", layer.Bytes()}, {"config.json", config}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, image.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

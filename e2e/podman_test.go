package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/cni"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// podman is podman 4 with the CNI backend as docs/CNI.md has a user set it
// up, but with storage, state and configuration of the test's own: global
// flags name its storage, and a containers.conf of its own (CONTAINERS_CONF)
// its runtime and network configuration, so nothing of the system's
// (/etc/containers, /etc/cni, /var/lib/containers) is read or changed.
type podman struct {
	t     *testing.T
	flags []string // global flags before the command
	env   []string
	// rootfs is the containers' root file system, run as it is (--rootfs):
	// `podman import` writes /var/lib/containers/cache whatever --root says
	// (docs/CNI.md).
	rootfs string
	netns  map[string]bool // the containers' namespaces seen, removed at cleanup if podman left them
	// hostNS is the network namespace podman runs in, and so the plugins
	// it chains (portmap's iptables rules); "" for the test's own. Only the
	// network namespace: podman's bind mounts of the containers'
	// namespaces must be seen by its next command and by the test, which
	// `ip netns exec`'s mount namespace would keep to itself.
	hostNS string
}

// newPodman sets podman up for the CNI networks whose configurations are in
// confDir, with the plugins in pluginDirs, and removes at cleanup every
// container, namespace and file it made.
func newPodman(t *testing.T, confDir string, pluginDirs []string) *podman {
	t.Helper()
	testbed.Need(t, lookPath("podman"), "podman: apt-get install podman (hack/install-deps.sh)")
	testbed.Need(t, lookPath("runc"), "runc: apt-get install runc (hack/install-deps.sh)")
	// Not t.TempDir(), whose name holds the test's: podman refuses a
	// runroot longer than 50 characters.
	dir, err := os.MkdirTemp("", "vnt-podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	confFile := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(confFile, []byte(podmanConf(t, confDir, pluginDirs, filepath.Join(dir, "tmp"))), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &podman{t: t, rootfs: busyboxRootfs(t), netns: map[string]bool{},
		flags: []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"), "--storage-driver", "vfs"},
		env:   append(cleanEnv(), "CONTAINERS_CONF="+confFile, quickRaceExit())} // podman passes its environment on to the plugins
	t.Cleanup(func() {
		for _, args := range [][]string{{"rm", "--all", "--force", "--time", "0"}, {"system", "reset", "--force"}} {
			if out, err := p.try(args...); err != nil {
				t.Errorf("cleanup: %v\n%s", err, out)
			}
		}
		for path := range p.netns {
			if _, err := os.Stat(path); err == nil {
				t.Errorf("podman left netns %s", path)
				_ = exec.Command("ip", "netns", "del", filepath.Base(path)).Run()
			}
		}
	})
	return p
}

// podmanConf is the containers.conf docs/CNI.md shows, its [network] table
// as written but for the directories, which are confDir and pluginDirs, and
// the test's additions it shows below it, with tmpDir as tmp_dir.
func podmanConf(t *testing.T, confDir string, pluginDirs []string, tmpDir string) string {
	t.Helper()
	quoted := make([]string, len(pluginDirs))
	for i, d := range pluginDirs {
		quoted[i] = strconv.Quote(d)
	}
	var conf strings.Builder
	for _, ex := range []struct {
		marker string
		set    map[string]string // key = value, for the example's line of key
	}{
		{"network_backend", map[string]string{"network_config_dir": strconv.Quote(confDir), "cni_plugin_dirs": "[" + strings.Join(quoted, ", ") + "]"}},
		{"events_logger", map[string]string{"tmp_dir": strconv.Quote(tmpDir)}},
	} {
		lines := strings.Split(docsCNIExample(t, "toml", ex.marker), "\n")
		for key, value := range ex.set {
			i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, key+" =") })
			if i < 0 {
				t.Fatalf("docs/CNI.md's containers.conf example with %s sets no %s", ex.marker, key)
			}
			lines[i] = key + " = " + value
		}
		conf.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return conf.String()
}

// try runs podman with args and returns its output; the plugin, race-built,
// writes its reports to podman's standard error.
func (p *podman) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{"podman"}, append(slices.Clone(p.flags), args...)...)
	if p.hostNS != "" {
		argv = append([]string{"nsenter", "--net=/var/run/netns/" + p.hostNS}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = p.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	testbed.CheckRace(p.t, "ovs-vnet-cni (podman "+args[0]+")", stderr.String(), nil)
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("podman %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(stdout.String()), nil
}

func (p *podman) run(args ...string) string {
	p.t.Helper()
	out, err := p.try(args...)
	if err != nil {
		p.t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// start runs a container that sleeps, on networks, and returns its name.
func (p *podman) start(name string, networks ...string) string {
	p.t.Helper()
	p.run("run", "--detach", "--name", name, "--network", strings.Join(networks, ","), "--rootfs", p.rootfs, "sleep", "3600")
	p.inspect(name)
	return name
}

// container is what podman says of a container's networking.
type container struct {
	ID              string `json:"Id"`
	NetworkSettings struct {
		SandboxKey string                      // its namespace's path
		Networks   map[string]containerNetwork // by CNI network name
	}
}

type containerNetwork struct {
	IPAddress   string
	IPPrefixLen int
	MacAddress  string
}

func (p *podman) inspect(name string) container {
	p.t.Helper()
	var cs []container
	out := p.run("container", "inspect", name)
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 {
		p.t.Fatalf("podman container inspect %s: %v\n%s", name, err, out)
	}
	if ns := cs[0].NetworkSettings.SandboxKey; ns != "" {
		p.netns[ns] = true
	}
	return cs[0]
}

// defaultRoute is the container's IPv4 default route as it sees it.
func (p *podman) defaultRoute(name string) string {
	p.t.Helper()
	return strings.Join(strings.Fields(p.run("exec", name, "ip", "-4", "route", "show", "default")), " ")
}

func (p *podman) wantDefault(name, step, want string) {
	p.t.Helper()
	if got := p.defaultRoute(name); got != want {
		p.t.Fatalf("%s: container %s's default route %q, want %q", step, name, got, want)
	}
}

func (p *podman) ping(name, ip string) {
	p.t.Helper()
	p.run("exec", name, "ping", "-c", "2", "-i", "0.2", "-W", "2", ip)
}

// TestPodman is issue 19's podman acceptance, on each backend: podman 4.3
// with its CNI backend, set up as docs/CNI.md says, with the conflist
// exactly as it shows it.
func TestPodman(t *testing.T) {
	bins := buildCNI(t)
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) { runPodman(t, bins, bc) })
	}
}

// podmanBed is a daemon with networks blue and red, and podman with a CNI
// network for each: blue's the conflist of docs/CNI.md, red's the same for
// network red under a name that sorts first, so that podman, which
// attaches a container's networks in Go map order, mostly attaches red
// before blue.
type podmanBed struct {
	d         *daemon
	box       *testbed.Sandbox
	hostNS    string
	p         *podman
	blue, red string // the CNI networks' names
}

// The daemon's networks under podman's CNI networks.
const (
	podmanBlueSubnet, podmanBlueGateway = "10.76.0.0/24", "10.76.0.1"
	podmanRedSubnet, podmanRedGateway   = "10.77.0.0/24", "10.77.0.1"
)

func newPodmanBed(t *testing.T, bins cniBins, bc backendCase) *podmanBed {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	sock := filepath.Join(t.TempDir(), "api.sock")
	d := startSocketDaemon(t, hostNS, sock, args...)
	d.must("PUT", "/v1/networks/blue", map[string]string{"subnet": podmanBlueSubnet}, 201, nil)
	d.must("PUT", "/v1/networks/red", map[string]string{"subnet": podmanRedSubnet}, 201, nil)

	var list docsCNIConfig
	for _, dc := range docsCNIConfigs(t) {
		if _, ok := dc.conf["plugins"]; ok {
			list = dc
			break
		}
	}
	blue := newCNIEnvFromDocs(t, bins, list, sock, unusedTokenFile(t))
	if got := blue.conf["plugins"].([]any)[0].(map[string]any)["network"]; got != "blue" {
		t.Fatalf("docs/CNI.md's conflist attaches to network %v, want blue", got)
	}
	// red: a deep copy of blue's, in the same directory.
	raw, err := json.Marshal(blue.conf)
	if err != nil {
		t.Fatal(err)
	}
	red := &cniEnv{t: t, bins: bins, confDir: blue.confDir, ifname: "eth0", cniPath: blue.cniPath}
	if err := json.Unmarshal(raw, &red.conf); err != nil {
		t.Fatal(err)
	}
	red.conf["name"] = testbed.UniqueName("vnt-cnia-") // before vnt-cnidoc-
	red.conf["plugins"].([]any)[0].(map[string]any)["network"] = "red"
	red.write("20-red.conflist")

	return &podmanBed{d: d, box: box, hostNS: hostNS, p: newPodman(t, blue.confDir, strings.Split(blue.cniPath, ":")),
		blue: blue.name(), red: red.name()}
}

// port is the daemon's port of the container's attachment on ifname, which
// must match what podman says of it on network.
func (b *podmanBed) port(t *testing.T, name, network, ifname string) portView {
	t.Helper()
	c := b.p.inspect(name)
	var p portView
	b.d.must("GET", "/v1/ports/"+cni.PortName(c.ID, ifname), nil, 200, &p)
	netns, n := c.NetworkSettings.SandboxKey, c.NetworkSettings.Networks[network]
	if p.Netns != netns || p.Ifname != ifname || p.IP != fmt.Sprintf("%s/%d", n.IPAddress, n.IPPrefixLen) || p.MAC != n.MacAddress {
		t.Fatalf("container %s on %s (netns %s, %+v): the daemon's port is %+v", name, network, netns, n, p)
	}
	return p
}

func runPodman(t *testing.T, bins cniBins, bc backendCase) {
	b := newPodmanBed(t, bins, bc)
	p, d := b.p, b.d

	// Two containers on blue reach each other; the daemon's ports are
	// theirs.
	c1, c2 := p.start("vnt-c1", b.blue), p.start("vnt-c2", b.blue)
	port1, port2 := b.port(t, c1, b.blue, "eth0"), b.port(t, c2, b.blue, "eth0")
	p.ping(c1, strings.Split(port2.IP, "/")[0])
	p.ping(c2, strings.Split(port1.IP, "/")[0])
	first := "default via " + podmanBlueGateway + " dev eth0"
	p.wantDefault(c1, "run", first)

	// Connect red: eth1, and blue keeps the default route, also across
	// restarts, on which podman attaches red first (most times: Go map
	// order); disconnect leaves it too.
	p.run("network", "connect", b.red, c1)
	b.port(t, c1, b.red, "eth1")
	p.wantDefault(c1, "network connect", first)
	p.ping(c1, podmanRedGateway)
	for i := range 2 {
		p.run("restart", "--time", "0", c1)
		p.wantDefault(c1, fmt.Sprintf("restart %d", i+1), first)
		b.port(t, c1, b.blue, "eth0")
		b.port(t, c1, b.red, "eth1")
	}
	p.run("network", "disconnect", b.red, c1)
	p.wantDefault(c1, "network disconnect", first)
	if routes := p.run("exec", c1, "ip", "-4", "route"); strings.Contains(routes, podmanRedSubnet) {
		t.Fatalf("after disconnect, container %s still routes to red:\n%s", c1, routes)
	}
	p.ping(c1, strings.Split(port2.IP, "/")[0])

	// With the daemon up, rm leaves no port.
	p.run("rm", "--force", "--time", "0", c2)
	d.must("GET", "/v1/ports/"+port2.Name, nil, 404, nil)

	// Last: it needs Must 2's release, and may leave the daemon down.
	t.Run("outage", func(t *testing.T) {
		// The subtest drives the parent's daemon and podman, and fails
		// itself, not the parent, when they fail.
		defer func(dt testing.TB, pt *testing.T) { d.t, p.t = dt, pt }(d.t, p.t)
		d.t, p.t = t, t
		runPodmanOutage(t, b, c1)
	})
}

// runPodmanOutage: the daemon is down while podman stops a container, so
// its DEL fails; started again, the container's next start replaces the
// port its gone namespace left (same container, same port name). Down
// again while podman removes the container: the daemon, started with a
// short --netns-grace, releases the port on its own, leaving no port, host
// link, OVS port or address behind. The replacement and the release are
// issue 19's Must 2 (docs/API.md).
func runPodmanOutage(t *testing.T, b *podmanBed, peer string) {
	p, d := b.p, b.d
	peerIP := strings.Split(b.port(t, peer, b.blue, "eth0").IP, "/")[0]
	c3 := p.start("vnt-c3", b.blue)
	before := b.port(t, c3, b.blue, "eth0")

	d.stop()
	p.run("stop", "--time", "0", c3)
	d.start()
	p.run("start", c3)
	after := b.port(t, c3, b.blue, "eth0")
	if after.Name != before.Name || after.Netns == before.Netns {
		t.Fatalf("port after the restart %+v, before %+v: want the same name in a new netns", after, before)
	}
	p.ping(c3, peerIP)

	d.stop()
	p.run("rm", "--force", "--time", "0", c3)
	d.args = append(d.args, "--netns-grace", "3s")
	d.start()
	waitFor(t, fmt.Sprintf("port %s of removed container %s gone after the daemon started", after.Name, c3), func() bool {
		code, _ := d.do("GET", "/v1/ports/"+after.Name, nil)
		return code == 404
	})
	for _, l := range linksIn(t, b.hostNS) {
		if l.Attrs().Name == after.HostIfname {
			t.Fatalf("port %s released, but its host link %s is left", after.Name, after.HostIfname)
		}
	}
	if b.box != nil && slices.Contains(bridgePorts(t, b.box, b.hostNS), after.HostIfname) {
		t.Fatalf("port %s released, but OVS port %s is left", after.Name, after.HostIfname)
	}
	// Its address is free again: a new port takes it.
	ns := newNetns(t, "vnt-pa-")
	ip := strings.Split(after.IP, "/")[0]
	d.must("PUT", "/v1/ports/vnt-after", map[string]string{"network": "blue", "netns": ns, "ip": ip}, 201, nil)
	ping(t, ns, peerIP, true)
	d.must("DELETE", "/v1/ports/vnt-after", nil, 204, nil)
}

// TestPodmanPortMappings is issue 21's podman acceptance, on each backend:
// podman 4.3's `run -p 18080:8080` reaches the container from the host
// and from the outside, with docs/CNI.md's conflist (the plugin's
// portMappings, backed by a port forward) and with its variant chaining
// the standard portmap, on a masquerading network (the variant's limit on
// OVS). podman runs in the daemon's host namespace, where portmap writes
// its iptables rules.
func TestPodmanPortMappings(t *testing.T) {
	bins := buildCNI(t)
	for _, bc := range backendKinds() {
		for _, variant := range []string{"portMappings", "portmap"} {
			t.Run(bc.name+"/"+variant, func(t *testing.T) { runPodmanPortMappings(t, bins, bc, variant) })
		}
	}
}

func runPodmanPortMappings(t *testing.T, bins cniBins, bc backendCase, variant string) {
	hostNS := newNetns(t, "vnt-host-")
	args, _ := bc.setup(t, hostNS)
	sock := filepath.Join(t.TempDir(), "api.sock")
	d := startSocketDaemon(t, hostNS, sock, args...)
	d.must("PUT", "/v1/networks/blue", map[string]any{"subnet": podmanBlueSubnet, "masquerade": true}, 201, nil)
	outNS := newOutside(t, hostNS)

	var list docsCNIConfig
	for _, dc := range docsCNIConfigs(t) {
		plugins, _ := dc.conf["plugins"].([]any)
		chained := slices.ContainsFunc(plugins, func(p any) bool { return p.(map[string]any)["type"] == "portmap" })
		if plugins != nil && chained == (variant == "portmap") {
			list = dc
			break
		}
	}
	if list.conf == nil {
		t.Fatalf("docs/CNI.md has no conflist for %s", variant)
	}
	env := newCNIEnvFromDocs(t, bins, list, sock, unusedTokenFile(t))
	p := newPodman(t, env.confDir, strings.Split(env.cniPath, ":"))
	p.hostNS = hostNS
	p.run("run", "--detach", "--name", "vnt-pm", "--network", env.name(), "-p", "18080:8080", "--rootfs", p.rootfs, "sleep", "3600")
	c := p.inspect("vnt-pm")
	serveWho(t, c.NetworkSettings.SandboxKey, []uint16{8080}, nil)
	published := addrPort(natHost, 18080)
	runNATProbes(t, variant+": -p 18080:8080", []natProbe{
		{what: "outside → host:18080", ns: outNS, proto: "tcp", to: published, want: outsideIP},
		{what: "host → host:18080", ns: hostNS, proto: "tcp", to: published, want: hostOutsideIP},
	})
	var fwds struct {
		PortForwards []struct{ Name string } `json:"port_forwards"`
	}
	d.must("GET", "/v1/port-forwards?port="+cni.PortName(c.ID, "eth0"), nil, 200, &fwds)
	if want := map[string]int{"portMappings": 1, "portmap": 0}[variant]; len(fwds.PortForwards) != want {
		t.Errorf("%s: the container's port has %d port forwards, want %d", variant, len(fwds.PortForwards), want)
	}

	if variant == "portMappings" {
		// Another container asking for the same host port: the plugin's
		// ADD fails with the daemon's refusal and undoes itself.
		out, err := p.try("run", "--detach", "--name", "vnt-pm2", "--network", env.name(), "-p", "18080:8080", "--rootfs", p.rootfs, "sleep", "3600")
		if err == nil || !strings.Contains(out, "is forwarded by") {
			t.Errorf("a second container on host port 18080: %v\n%s", err, out)
		}
		var ports struct{ Ports []portView }
		d.must("GET", "/v1/ports", nil, 200, &ports)
		if len(ports.Ports) != 1 {
			t.Errorf("after the refused ADD the daemon has ports %v, want the first container's alone", portNames(ports.Ports))
		}
	}

	p.run("rm", "--force", "--time", "0", "vnt-pm")
	runNATProbes(t, variant+": container removed", []natProbe{
		{what: "outside → host:18080", ns: outNS, proto: "tcp", to: published},
	})
	d.must("GET", "/v1/port-forwards", nil, 200, &fwds)
	if len(fwds.PortForwards) != 0 {
		t.Errorf("%s: port forwards left after the container's removal: %v", variant, fwds.PortForwards)
	}
}

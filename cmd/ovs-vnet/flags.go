package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// config is the daemon's command line (docs/DESIGN.md §2).
type config struct {
	backend        string
	ovsdb          string
	bridge         string
	datapathType   string
	openflowListen string
	listen         string
	stateDir       string
	tokenFile      string
	allowedHosts   string
	tlsCert        string
	tlsKey         string
	openflowCert   string
	openflowKey    string
	openflowCA     string
	logLevel       string
	logFormat      string
	vswitchdCtl    string
	portMetrics    bool
	resetDataplane bool
	sparePorts     int
	scrapeTimeout  time.Duration
	netnsGrace     time.Duration
	cluster        clusterFlags
}

// clusterFlags join the daemon to a cluster of hosts (docs/CLUSTER.md).
type clusterFlags struct {
	etcdEndpoints string // comma separated; "" = a single host, state in --state-dir
	etcdPrefix    string
	etcdCert      string
	etcdKey       string
	etcdCA        string
	hostName      string
	underlayIP    string
	tunnel        string
	hostLease     time.Duration
}

// parseFlags reads args; every flag not given there falls back to the
// environment variable OVS_VNET_<FLAG> (dashes as underscores), then to its default.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("ovs-vnet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.backend, "backend", "auto", "datapath backend: auto (ovs when OVSDB answers, else linux), ovs or linux")
	fs.StringVar(&c.ovsdb, "ovsdb", "unix:/var/run/openvswitch/db.sock", "OVSDB endpoint: unix:PATH or tcp:HOST:PORT")
	fs.StringVar(&c.bridge, "bridge", "br-vnet", "integration bridge (ovs) or bridge-name prefix (linux)")
	fs.StringVar(&c.datapathType, "datapath-type", "auto", "OVS datapath type: auto (system with the kernel module, else netdev), system or netdev")
	fs.StringVar(&c.openflowListen, "openflow-listen", "tcp:127.0.0.1:6653", "OpenFlow controller address the OVS bridge connects to: tcp:HOST:PORT (loopback only) or ssl:HOST:PORT (with --openflow-cert, --openflow-key, --openflow-ca)")
	fs.StringVar(&c.openflowCert, "openflow-cert", "", "PEM certificate of the ssl: OpenFlow listener; also the switch's own unless OVS's SSL row was set by someone else")
	fs.StringVar(&c.openflowKey, "openflow-key", "", "PEM private key of --openflow-cert")
	fs.StringVar(&c.openflowCA, "openflow-ca", "", "PEM CA certificate that must have signed the switch's certificate (and, for OVS, ours)")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9476", "address of the REST API, /metrics, /healthz and /readyz: HOST:PORT or unix:PATH (a socket of mode 0660)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate (chain) to serve the API over HTTPS; with --tls-key")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.stateDir, "state-dir", "/var/lib/ovs-vnet", "directory of the desired-state database")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the API bearer token; required when --listen is not loopback")
	fs.StringVar(&c.allowedHosts, "allowed-hosts", "", "host names, comma separated, that a TCP --listen without --token-file accepts in the Host and Origin headers besides loopback ones (localhost, 127.0.0.0/8, [::1]); any other gets 403, against DNS rebinding (docs/security.md)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.vswitchdCtl, "vswitchd-ctl", "auto", "ovs-vswitchd's control socket, read for datapath metrics: auto (found beside the --ovsdb unix socket) or a path")
	fs.BoolVar(&c.portMetrics, "port-metrics", true, "export per-port series; per-network sums are exported either way (turn off on hosts with very many ports)")
	fs.BoolVar(&c.resetDataplane, "reset-dataplane", false, "when the state store holds no network, delete the ports, network bridges and flows of ovs-vnet's that the datapath holds (without it the daemon refuses to start on such a state: a lost state dir must not wipe the dataplane); give it once, deliberately, see docs/OPERATIONS.md")
	fs.IntVar(&c.sparePorts, "spare-ports", 0, "veth pairs kept ready on the OVS bridge, so that attaching a veth port waits for no OVSDB change (refilled in one batch when half are used); costs forwarding on the userspace datapath, see docs/OPERATIONS.md (0: off)")
	fs.DurationVar(&c.scrapeTimeout, "scrape-timeout", 5*time.Second, "deadline of each metrics source within one scrape of /metrics")
	fs.DurationVar(&c.netnsGrace, "netns-grace", time.Minute, "how long the namespace of a port made with release_with_netns (every CNI plugin's port) may be gone before the daemon releases the port and its address, as a missed DEL would have (0: never), see docs/CNI.md")
	cl := &c.cluster
	fs.StringVar(&cl.etcdEndpoints, "etcd-endpoints", "", "etcd client URLs, comma separated: join the cluster of hosts sharing that etcd (needs --underlay-ip); empty: a single host, state in --state-dir")
	fs.StringVar(&cl.etcdPrefix, "etcd-prefix", "/ovs-vnet", "key prefix of the cluster's state in etcd (one cluster per prefix)")
	fs.StringVar(&cl.etcdCert, "etcd-cert", "", "PEM client certificate for etcd (with --etcd-key)")
	fs.StringVar(&cl.etcdKey, "etcd-key", "", "PEM private key of --etcd-cert")
	fs.StringVar(&cl.etcdCA, "etcd-ca", "", "PEM CA certificate that signed etcd's server certificates (https:// endpoints)")
	fs.StringVar(&cl.hostName, "host-name", shortHostname(), "this host's name in the cluster (1-32 of a-z, 0-9, '-'): the ports created here are its own; default: the hostname's first label, lower case")
	fs.StringVar(&cl.underlayIP, "underlay-ip", "", "this host's IPv4 address on the network that joins the hosts: tunnels start and end there")
	fs.StringVar(&cl.tunnel, "tunnel", "vxlan", "tunnel between hosts: vxlan or geneve (geneve: OVS backend only); the VNI is the network's id")
	fs.DurationVar(&cl.hostLease, "host-lease", 10*time.Second, "lease of this host's record in etcd: this long after the daemon stops renewing it, the other hosts stop forwarding to its ports")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "OVS_VNET_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" && !set[f.Name] && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s: %w", env, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	return c, c.validate()
}

// validate checks the flags that only make sense together, and makes the
// OpenFlow TLS files absolute: ovs-vswitchd reads them from its own
// working directory.
func (c *config) validate() error {
	if err := c.cluster.validate(); err != nil {
		return err
	}
	if c.sparePorts < 0 {
		return fmt.Errorf("--spare-ports %d: want 0 or more", c.sparePorts)
	}
	if c.netnsGrace < 0 {
		return fmt.Errorf("--netns-grace %s: want 0 (never) or more", c.netnsGrace)
	}
	if err := c.validateAllowedHosts(); err != nil {
		return err
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	ssl := strings.HasPrefix(c.openflowListen, "ssl:")
	files := []*string{&c.openflowCert, &c.openflowKey, &c.openflowCA}
	given := 0
	for _, f := range files {
		if *f != "" {
			given++
		}
	}
	switch {
	case ssl && given != len(files):
		return fmt.Errorf("--openflow-listen %s needs --openflow-cert, --openflow-key and --openflow-ca", c.openflowListen)
	case !ssl && given > 0:
		return fmt.Errorf("--openflow-cert, --openflow-key and --openflow-ca are for an ssl: --openflow-listen, not %s", c.openflowListen)
	}
	for _, f := range files {
		if *f == "" {
			continue
		}
		abs, err := filepath.Abs(*f)
		if err != nil {
			return err
		}
		*f = abs
	}
	if network, addr, _ := strings.Cut(c.openflowListen, ":"); network == "tcp" && !isLoopback(addr) {
		return fmt.Errorf("--openflow-listen %s is not a loopback address: anyone who reaches it could pose as the switch; use ssl:HOST:PORT with --openflow-cert, --openflow-key and --openflow-ca", c.openflowListen)
	}
	return nil
}

// hostNameRE is a DNS name or an IPv4 address: what --allowed-hosts lists.
var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\.?$`)

// allowedHostList splits --allowed-hosts.
func (c config) allowedHostList() []string {
	var out []string
	for _, h := range strings.Split(c.allowedHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// validateAllowedHosts refuses --allowed-hosts where the Host header is
// not checked (a token or a unix socket), so that it never seems to
// protect what it does not, and entries that are no host name.
func (c config) validateAllowedHosts() error {
	hosts := c.allowedHostList()
	if len(hosts) == 0 {
		return nil
	}
	if c.tokenFile != "" || c.unixSocket() != "" {
		return errors.New("--allowed-hosts is for a TCP --listen without --token-file: with a token or on a unix socket the Host header is not checked")
	}
	for _, h := range hosts {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), "0"
		}
		_, portErr := strconv.ParseUint(port, 10, 16)
		if _, err := netip.ParseAddr(host); portErr != nil || err != nil && !hostNameRE.MatchString(host) {
			return fmt.Errorf("--allowed-hosts: %q is not a host name or address", h)
		}
	}
	return nil
}

// shortHostname is the default --host-name: what `hostname -s` prints, in
// lower case, which is a valid name on most hosts.
func shortHostname() string {
	name, _ := os.Hostname()
	name, _, _ = strings.Cut(name, ".")
	return strings.ToLower(name)
}

func (c *clusterFlags) validate() error {
	if c.etcdEndpoints == "" {
		if c.underlayIP != "" || c.etcdCert != "" || c.etcdKey != "" || c.etcdCA != "" {
			return errors.New("--underlay-ip and --etcd-cert/-key/-ca are for a cluster: give --etcd-endpoints")
		}
		return nil
	}
	// The name is the host's key in etcd and in its ports' records; a
	// single host's name is only shown.
	if err := v1.ValidateName(c.hostName); err != nil {
		return fmt.Errorf("--host-name: %w", err)
	}
	ip, err := netip.ParseAddr(c.underlayIP)
	if err != nil || !ip.Is4() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() {
		return fmt.Errorf("--underlay-ip %q: a cluster needs this host's unicast IPv4 address on the underlay", c.underlayIP)
	}
	if c.tunnel != datapath.TunnelVXLAN && c.tunnel != datapath.TunnelGeneve {
		return fmt.Errorf("--tunnel %q: want vxlan or geneve", c.tunnel)
	}
	if (c.etcdCert == "") != (c.etcdKey == "") {
		return errors.New("--etcd-cert and --etcd-key go together: give both or neither")
	}
	if c.hostLease < 2*time.Second || c.hostLease > time.Hour {
		return fmt.Errorf("--host-lease %s: want 2s to 1h", c.hostLease)
	}
	if !strings.HasPrefix(c.etcdPrefix, "/") || strings.HasSuffix(c.etcdPrefix, "/") {
		return fmt.Errorf("--etcd-prefix %q: want a path such as /ovs-vnet, without a trailing slash", c.etcdPrefix)
	}
	for _, e := range c.endpoints() {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			return fmt.Errorf("--etcd-endpoints: %q is not an http:// or https:// URL", e)
		}
	}
	return nil
}

// endpoints splits --etcd-endpoints.
func (c clusterFlags) endpoints() []string {
	var out []string
	for _, e := range strings.Split(c.etcdEndpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// unixSocket is the path of a unix:PATH --listen, "" for HOST:PORT.
func (c config) unixSocket() string {
	if path, ok := strings.CutPrefix(c.listen, "unix:"); ok {
		return path
	}
	return ""
}

// isLoopback reports whether HOST:PORT names a loopback host.
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// token reads the bearer token and enforces the rule that a non-loopback
// listener never runs without one.
func (c config) token() (string, error) {
	if c.tokenFile == "" {
		// A unix socket reaches only local users that its mode (0660) and
		// directory let in: as local as loopback.
		if c.unixSocket() != "" {
			return "", nil
		}
		if _, _, err := net.SplitHostPort(c.listen); err != nil {
			return "", fmt.Errorf("--listen %q: %w", c.listen, err)
		}
		if !isLoopback(c.listen) {
			return "", fmt.Errorf("--listen %s is not a loopback address: refusing to serve without --token-file", c.listen)
		}
		return "", nil
	}
	b, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", c.tokenFile)
	}
	return tok, nil
}

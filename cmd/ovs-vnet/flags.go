package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// config is the daemon's command line (DESIGN.md §2).
type config struct {
	backend        string
	ovsdb          string
	bridge         string
	datapathType   string
	openflowListen string
	listen         string
	stateDir       string
	tokenFile      string
	logLevel       string
	logFormat      string
	vswitchdCtl    string
	portMetrics    bool
	scrapeTimeout  time.Duration
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
	fs.StringVar(&c.openflowListen, "openflow-listen", "tcp:127.0.0.1:6653", "OpenFlow controller address the OVS bridge connects to: tcp:HOST:PORT")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9476", "address of the REST API, /metrics, /healthz and /readyz")
	fs.StringVar(&c.stateDir, "state-dir", "/var/lib/ovs-vnet", "directory of the desired-state database")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the API bearer token; required when --listen is not loopback")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.vswitchdCtl, "vswitchd-ctl", "auto", "ovs-vswitchd's control socket, read for datapath metrics: auto (found beside the --ovsdb unix socket) or a path")
	fs.BoolVar(&c.portMetrics, "port-metrics", true, "export per-port series; per-network sums are exported either way (turn off on hosts with very many ports)")
	fs.DurationVar(&c.scrapeTimeout, "scrape-timeout", 5*time.Second, "deadline of each metrics source within one scrape of /metrics")
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
	return c, envErr
}

// token reads the bearer token and enforces the rule that a non-loopback
// listener never runs without one.
func (c config) token() (string, error) {
	if c.tokenFile == "" {
		host, _, err := net.SplitHostPort(c.listen)
		if err != nil {
			return "", fmt.Errorf("--listen %q: %w", c.listen, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
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

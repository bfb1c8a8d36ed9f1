package testbed

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Etcd is a cluster of real etcd processes (the distribution's `etcd`
// binary) on 127.0.0.1, each with its data under the test's temp dir. Members
// can be killed and started again with their data, to play outages.
type Etcd struct {
	// The files a client needs for a cluster started with EtcdTLS: the CA
	// that signed the servers' certificates, and a client certificate the
	// servers require.
	CAFile, CertFile, KeyFile string

	t       testing.TB
	tls     bool
	mu      sync.Mutex
	members []*etcdMember
}

type etcdMember struct {
	name, dir, logPath string
	clientURL          string
	args               []string
	cmd                *exec.Cmd
	exited             chan struct{}
	killed             bool // by kill: its exit is no failure
}

// EtcdOption changes how StartEtcd starts the cluster.
type EtcdOption func(*Etcd)

// EtcdTLS serves clients over TLS with certificates made for the test, and
// requires client certificates. Endpoints are then https:// URLs.
func EtcdTLS() EtcdOption { return func(e *Etcd) { e.tls = true } }

// etcdReady bounds how long a cluster or a member may take to answer: on a
// machine busy with every package's tests at once, a member started again
// may take many seconds to catch up and a cluster to elect its leader.
const etcdReady = 60 * time.Second

// StartEtcd starts a cluster of members and waits until it serves
// linearizable reads (it has a leader and a quorum). It skips the test when
// there is no etcd binary (fails under `make test`); the processes are killed
// at cleanup. The processes die with the test binary's thread that started
// them (Pdeathsig): call it from a goroutine that is not locked to its thread.
//
// Its ports are free when it picks them, but another process may bind one
// before etcd does (tests run in parallel): a member that fails to bind
// makes it start the cluster again, on other ports.
func StartEtcd(t testing.TB, members int, opts ...EtcdOption) *Etcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	Need(t, err == nil, "etcd binary")
	e := &Etcd{t: t}
	for _, o := range opts {
		o(e)
	}
	dir := t.TempDir()
	if e.tls {
		e.makeCerts(dir)
	}
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for i, m := range e.members {
			if t.Failed() {
				t.Logf("etcd member %d log (tail):\n%s", i, tail(m.logPath, 15))
			}
			m.kill()
		}
	})
	const tries = 3
	for try := 1; ; try++ {
		e.configure(bin, filepath.Join(dir, fmt.Sprintf("try%d", try)), members)
		e.mu.Lock()
		for _, m := range e.members {
			m.start(t)
		}
		e.mu.Unlock()
		err := e.healthy(e.Endpoints()...)
		if err == nil {
			return e
		}
		if try == tries || !e.portTaken() {
			t.Fatalf("etcd %v not healthy after %v: %v\n%s", e.Endpoints(), etcdReady, err, e.logs())
		}
		t.Logf("etcd: a port was taken before a member could bind it; starting again on other ports")
		e.StopAll()
	}
}

// configure makes the members of a new cluster, with fresh ports and data
// under dir.
func (e *Etcd) configure(bin, dir string, members int) {
	ports := freePorts(e.t, 2*members)
	token := UniqueName("vnet-etcd-")
	var peers []string
	for i := range members {
		peers = append(peers, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	scheme := "http"
	if e.tls {
		scheme = "https"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.members = nil
	for i := range members {
		m := &etcdMember{
			name:      fmt.Sprintf("m%d", i),
			dir:       filepath.Join(dir, fmt.Sprintf("m%d", i)),
			logPath:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
			clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
		}
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		m.args = []string{bin,
			"--name", m.name, "--data-dir", m.dir,
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(peers, ","),
			"--initial-cluster-token", token, "--initial-cluster-state", "new",
			"--logger", "zap", "--log-outputs", "stderr",
		}
		if e.tls {
			certs := filepath.Dir(e.CAFile) // makeCerts wrote them all there
			m.args = append(m.args, "--cert-file", filepath.Join(certs, "server.pem"),
				"--key-file", filepath.Join(certs, "server-key.pem"),
				"--trusted-ca-file", e.CAFile, "--client-cert-auth")
		}
		e.members = append(e.members, m)
	}
}

// portTaken tells whether a member exited because its port was taken.
func (e *Etcd) portTaken() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.members {
		raw, _ := os.ReadFile(m.logPath)
		if !m.running() && bytes.Contains(raw, []byte("address already in use")) {
			return true
		}
	}
	return false
}

// Endpoints are the members' client URLs.
func (e *Etcd) Endpoints() []string {
	var eps []string
	for _, m := range e.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

// Stop kills member i (SIGKILL) and waits until it is gone.
func (e *Etcd) Stop(i int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.members[i].kill()
}

// Start starts member i again with its data dir, and waits until it
// answers a status request (which needs no quorum).
func (e *Etcd) Start(i int) {
	e.t.Helper()
	e.mu.Lock()
	m := e.members[i]
	m.start(e.t)
	e.mu.Unlock()
	e.waitStatus(m)
}

// StopAll kills every member.
func (e *Etcd) StopAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.members {
		m.kill()
	}
}

// StartAll starts the members that are not running and waits until the
// cluster serves linearizable reads.
func (e *Etcd) StartAll() {
	e.t.Helper()
	e.mu.Lock()
	for _, m := range e.members {
		if !m.running() {
			m.start(e.t)
		}
	}
	e.mu.Unlock()
	e.waitHealthy(e.Endpoints()...)
}

func (m *etcdMember) running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

func (m *etcdMember) start(t testing.TB) {
	t.Helper()
	if m.running() {
		t.Fatalf("etcd member %s is already running", m.name)
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(m.args[0], m.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no ETCD_* settings of the caller's
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd member %s: %v", m.name, err)
	}
	m.cmd, m.exited, m.killed = cmd, make(chan struct{}), false
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(m.exited)
}

// kill ends the member's process, started by start: only that PID.
func (m *etcdMember) kill() {
	if !m.running() {
		return
	}
	m.killed = true
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// Client is a client of the cluster (TLS when it was started with it),
// closed at cleanup: an independent witness of what a store wrote.
func (e *Etcd) Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli := e.client(t, endpoints...)
	t.Cleanup(func() { cli.Close() })
	return cli
}

func (e *Etcd) client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	if len(endpoints) == 0 {
		endpoints = e.Endpoints()
	}
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	if e.tls {
		cfg.TLS = e.clientTLS(t)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	return cli
}

func (e *Etcd) waitHealthy(endpoints ...string) {
	e.t.Helper()
	if err := e.healthy(endpoints...); err != nil {
		e.t.Fatalf("etcd %v not healthy after %v: %v\n%s", endpoints, etcdReady, err, e.logs())
	}
}

// healthy waits until the endpoints serve linearizable reads, for at most
// etcdReady; it gives up at once when a member has exited.
func (e *Etcd) healthy(endpoints ...string) error {
	cli := e.client(e.t, endpoints...)
	defer cli.Close()
	var err error
	for deadline := time.Now().Add(etcdReady); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if name := e.exited(); name != "" {
			return fmt.Errorf("member %s exited", name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = cli.Get(ctx, "testbed-health")
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

// exited names a member that was started and has exited, "" when none.
func (e *Etcd) exited() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.members {
		if m.cmd != nil && !m.running() && !m.killed {
			return m.name
		}
	}
	return ""
}

func (e *Etcd) waitStatus(m *etcdMember) {
	e.t.Helper()
	cli := e.client(e.t, m.clientURL)
	defer cli.Close()
	var err error
	for deadline := time.Now().Add(etcdReady); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = cli.Status(ctx, m.clientURL)
		cancel()
		if err == nil {
			return
		}
	}
	e.t.Fatalf("etcd member %s does not answer after %v: %v\n%s", m.name, etcdReady, err, e.logs())
}

func (e *Etcd) logs() string {
	var b strings.Builder
	for _, m := range e.members {
		fmt.Fprintf(&b, "--- %s (%s):\n%s\n", m.name, m.logPath, tail(m.logPath, 15))
	}
	return b.String()
}

func tail(path string, lines int) string {
	raw, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// freePorts finds n distinct free TCP ports on 127.0.0.1 by holding them all
// open at once, then releasing them for etcd to bind. It picks them outside
// the kernel's range of ephemeral ports where it can, so that no outgoing
// connection (of the many clients of the tests running meanwhile) takes one
// as its source port before etcd binds it, or while a member is stopped.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := portsOutsideEphemeral()
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi > lo && tries < 1000 {
			addr = fmt.Sprintf("127.0.0.1:%d", lo+mathrand.IntN(hi-lo))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				t.Fatal(err)
			}
			continue // taken
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// portsOutsideEphemeral is a range of ports [lo, hi) the kernel does not
// hand out as source ports; empty when it cannot tell.
func portsOutsideEphemeral() (lo, hi int) {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	var first, last int
	if _, err := fmt.Sscan(string(raw), &first, &last); err != nil {
		return 0, 0
	}
	switch {
	case first >= 12000:
		return 10000, first
	case last <= 63000:
		return last + 1, 65536
	}
	return 0, 0
}

// makeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
func (e *Etcd) makeCerts(dir string) {
	e.t.Helper()
	now := time.Now()
	caKey := genKey(e.t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ovs-vnet test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		e.t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	e.CAFile = filepath.Join(dir, "ca.pem")
	writePEM(e.t, e.CAFile, "CERTIFICATE", caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) {
		key := genKey(e.t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			e.t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			e.t.Fatal(err)
		}
		writePEM(e.t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
		writePEM(e.t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", keyDER)
	}
	leaf(2, "server", x509.ExtKeyUsageServerAuth)
	leaf(3, "client", x509.ExtKeyUsageClientAuth)
	e.CertFile, e.KeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
}

func genKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	var b bytes.Buffer
	if err := pem.Encode(&b, &pem.Block{Type: kind, Bytes: der}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientTLS is the client side of EtcdTLS: the test CA and the client
// certificate.
func (e *Etcd) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(e.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(raw)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
}

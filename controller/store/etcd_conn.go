package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The connection side of the etcd store: its configuration, connecting,
// and bounding every operation in time, with failures told apart.

// EtcdConfig says how to reach the etcd cluster and how to behave when it
// cannot be reached.
type EtcdConfig struct {
	// Endpoints are the client URLs of the cluster's members:
	// http://HOST:PORT, https://HOST:PORT, or HOST:PORT (TLS when a file
	// below is set).
	Endpoints []string
	// Prefix is where the keys live; default "/ovs-vnet". Clusters that
	// share an etcd use different prefixes.
	Prefix string
	// CAFile verifies the servers' certificates (the system's roots when
	// empty); CertFile and KeyFile are a client certificate, for servers
	// that ask for one. Any of them turns TLS on.
	CertFile, KeyFile, CAFile string
	// LeaseTTL is how long a host stays live after its last keepalive;
	// default 10s. etcd rounds it up to whole seconds and to at least 1.5
	// election timeouts.
	LeaseTTL time.Duration
	// OpTimeout bounds every operation; default 5s. An operation that
	// runs out of it fails with ErrUnavailable.
	OpTimeout time.Duration
	// Log receives state changes: host lost and re-registered, watch lost
	// and resumed. Default slog.Default().
	Log *slog.Logger
}

// Defaults of EtcdConfig.
const (
	DefaultEtcdPrefix = "/ovs-vnet"
	DefaultLeaseTTL   = 10 * time.Second
	DefaultOpTimeout  = 5 * time.Second
)

// etcdRetry is the pause between two attempts of WaitEtcd.
const etcdRetry = 2 * time.Second

// WaitEtcd opens the store with OpenEtcd, trying again for as long as etcd
// is unavailable, until ctx ends: a host whose etcd is not up yet (the
// whole cluster booting) waits for it rather than fail. Any other error
// ends it at once.
func WaitEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	for {
		st, err := OpenEtcd(ctx, cfg)
		if err == nil || !errors.Is(err, ErrUnavailable) {
			return st, err
		}
		cfg.Log.Warn("etcd unreachable; retrying", "endpoints", strings.Join(cfg.Endpoints, ","), "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(etcdRetry):
		}
	}
}

// OpenEtcd connects to etcd and makes sure it answers (a linearizable read,
// so a cluster without quorum counts as down). When it does not within
// OpTimeout it fails with ErrUnavailable: the caller retries.
func OpenEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultEtcdPrefix
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	tlsConfig, err := cfg.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	for _, ep := range cfg.Endpoints {
		if tlsConfig != nil && strings.HasPrefix(ep, "http://") {
			// The client would talk plain text to it, ignoring the files.
			return nil, fmt.Errorf("etcd: endpoint %s is not TLS, yet TLS files are given: use https://", ep)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         tlsConfig,
		DialTimeout: cfg.OpTimeout,
		// gRPC pings a silent connection; 10s is gRPC's minimum, and etcd
		// refuses pings more often than every 5s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		// Our own log says what matters; the client's would log each retry.
		Logger: zap.NewNop(),
		// gRPC's reconnect backoff grows to 2 minutes by default: etcd back
		// after a long outage would go unnoticed for as long.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: cfg.OpTimeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s := &Etcd{
		cli:  cli,
		cfg:  cfg,
		root: strings.TrimSuffix(cfg.Prefix, "/") + "/v1/",
		log:  cfg.Log.With("etcd", strings.Join(cfg.Endpoints, ",")),
	}
	s.closed, s.close = context.WithCancel(context.Background())
	err = s.do(ctx, "connect to etcd "+strings.Join(cfg.Endpoints, ","), func(ctx context.Context) error {
		_, err := cli.Get(ctx, s.root+topologyKey, clientv3.WithCountOnly())
		return err
	})
	if err != nil {
		s.Close()
		if why := probe(cfg.Endpoints, tlsConfig); why != "" {
			err = fmt.Errorf("%w (%s)", err, why)
		}
		return nil, err
	}
	return s, nil
}

// probe tells why the endpoints do not answer, when a plain connection says
// more than gRPC's "deadline exceeded": refused, or a TLS handshake that
// fails. Empty when each connects. It takes a second or so at most.
func probe(endpoints []string, tlsConfig *tls.Config) string {
	why := make([]string, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() {
			if err := probeOne(ep, tlsConfig); err != nil {
				why[i] = ep + ": " + err.Error()
			}
		})
	}
	wg.Wait()
	return strings.Join(slices.DeleteFunc(why, func(s string) bool { return s == "" }), "; ")
}

func probeOne(ep string, tlsConfig *tls.Config) error {
	scheme, host, ok := strings.Cut(ep, "://")
	if !ok {
		host = scheme
	}
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if tlsConfig == nil && scheme != "https" {
		return nil
	}
	cfg := &tls.Config{}
	if tlsConfig != nil {
		cfg = tlsConfig.Clone()
	}
	cfg.NextProtos = []string{"h2"}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(host)
	}
	tc := tls.Client(conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(time.Second))
	if err := tc.Handshake(); err != nil {
		return err
	}
	// A TLS 1.3 server refuses a client certificate after the handshake:
	// its alert is the first thing to read.
	_ = tc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := tc.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c EtcdConfig) tlsConfig() (*tls.Config, error) {
	if c.CertFile == "" && c.KeyFile == "" && c.CAFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("a client certificate needs both a certificate and a key file")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate", c.CAFile)
		}
	}
	return cfg, nil
}

// Close stops Register and Watch and disconnects. Leases stay: a host stays
// live until its lease runs out.
func (s *Etcd) Close() error {
	s.close()
	return s.cli.Close()
}

// do runs op bounded by OpTimeout and tells what failed: a refusal as it is,
// anything else wrapped with what, and ErrUnavailable when etcd could not
// be reached or did not answer in time.
func (s *Etcd) do(ctx context.Context, what string, op func(context.Context) error) error {
	return s.retry(ctx, what, func(ctx context.Context, _ bool) error { return op(ctx) })
}

// retry is do for an op that must know whether an earlier attempt may have
// been applied (again): an attempt that failed for want of etcd is tried
// again while OpTimeout lasts. Each attempt gets half of OpTimeout, so that
// a write stuck on a leader that died (etcd answers it only after its own
// request timeout, 7s by default) is sent again once a new leader is
// elected (about 1.5s with etcd's default election timeout).
func (s *Etcd) retry(ctx context.Context, what string, op func(ctx context.Context, again bool) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	wait := backoff{min: 50 * time.Millisecond, max: 500 * time.Millisecond}
	var err error
	for again := false; ; again = true {
		attempt, cancelAttempt := context.WithTimeout(ctx, s.cfg.OpTimeout/2)
		err = op(attempt, again)
		cancelAttempt()
		if err == nil || !unavailable(err) || errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			break
		}
		wait.sleep(ctx)
		if ctx.Err() != nil {
			break
		}
	}
	switch {
	case err == nil || errors.Is(err, ErrExists) || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound):
		return err
	case errors.Is(err, ErrUnavailable):
		return fmt.Errorf("%s: %w", what, err)
	case unavailable(err):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// unavailable tells the failures that mean "etcd is not there now" — no
// connection, no leader, no answer in time — from those a retry does not
// mend. A cancelled caller is not one: the request went away, not etcd.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	code, msg := codes.OK, ""
	var etcdErr rpctypes.EtcdError
	if errors.As(err, &etcdErr) {
		code = etcdErr.Code()
	} else if st, ok := status.FromError(err); ok {
		code, msg = st.Code(), st.Message()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	case codes.Unknown:
		// Our deadline, passed on to the server, ran out there: etcd
		// answered too late ("code = Unknown desc = context deadline
		// exceeded", seen on a loaded machine).
		return msg == context.DeadlineExceeded.Error()
	}
	return false
}

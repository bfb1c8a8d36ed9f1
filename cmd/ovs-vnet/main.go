// Command ovs-vnet is the daemon: it wires the store, the controller, the
// datapath backend and the HTTP server together, and nothing else.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/backend"
	"github.com/ovs-vnet/ovs-vnet/exporter"
	"github.com/ovs-vnet/ovs-vnet/httpapi"
	"github.com/ovs-vnet/ovs-vnet/internal/buildinfo"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ovs-vnet:", err)
		os.Exit(exitStatus(err))
	}
}

// Exit statuses that tell a supervisor why a start was refused
// (deploy/systemd/ovs-vnet.service); anything else is 1.
const (
	// exitNeedsOperator (EX_CONFIG): the state is empty or damaged while
	// the datapath holds objects; only an operator can say what to do, so
	// restarting is of no use.
	exitNeedsOperator = 78
	// exitTaken (EX_TEMPFAIL): another daemon owns the namespace or the
	// bridge; a later start may find it gone.
	exitTaken = 75
)

func exitStatus(err error) int {
	switch {
	case errors.Is(err, controller.ErrEmptyState), errors.Is(err, store.ErrDamaged):
		return exitNeedsOperator
	case errors.Is(err, datapath.ErrTaken), errors.Is(err, backend.ErrLocked):
		return exitTaken
	}
	return 1
}

func run() error {
	cfg, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	token, err := cfg.token()
	if err != nil {
		return err
	}
	// The namespace's one daemon before anything is made: a second one
	// is told who the first is, not that the state file is busy.
	self := backend.Self()
	self.Backend, self.Bridge, self.StateDir, self.Etcd = cfg.backend, cfg.bridge, cfg.stateDir, cfg.cluster.etcdEndpoints
	unlock, err := backend.Lock(backend.LockDir, self, log)
	if err != nil {
		return err
	}
	defer unlock()
	created, err := makeStateDir(cfg.stateDir)
	if err != nil {
		return err
	}
	// Deferred before the store's Close, so it runs after it.
	var refused atomic.Bool
	defer func() {
		if refused.Load() {
			if err := created.remove(); err != nil {
				log.Warn("remove what this refused start made of the state dir", "err", err)
			}
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()

	version := buildinfo.Version()
	// A plain registry: the pedantic one re-checks every sample of every
	// scrape against its descriptor (a thousand ports are 9,000 of them);
	// the tests gather the same collectors on pedantic registries instead.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ctlOpts := []controller.Option{controller.WithNetnsGrace(cfg.netnsGrace)}
	if cfg.resetDataplane {
		ctlOpts = append(ctlOpts, controller.WithResetDataplane())
	}
	ctl, err := controller.New(st, cfg.cluster.hostName, log, controller.NewMetrics(reg, version), ctlOpts...)
	if err != nil {
		return err
	}
	reg.MustRegister(exporter.New(ctl, exporter.Options{PerPort: cfg.portMetrics, Timeout: cfg.scrapeTimeout, Log: log}))

	ln, url, err := listenAPI(cfg)
	if err != nil {
		return err
	}
	srv := newServer(guardHosts(cfg, httpapi.NewHandler(ctl, reg, version, token), token), log, defaultTimeouts)
	serve, err := serveAPI(cfg, srv, ln)
	if err != nil {
		ln.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- serve() }()
	log.Info("serving", "api", url, "auth", token != "", "backend", cfg.backend, "version", version)

	var underlay *datapath.Underlay
	// quit is why the daemon stops on its own while it runs: its host
	// left its cluster, or the OVS bridge's lock is another daemon's now.
	// Either way it must stop driving the datapath at once.
	quit := make(chan error, 1)
	abort := func(err error) {
		select {
		case quit <- err:
		default: // the first reason is enough
		}
		stop()
	}
	if cluster, ok := st.(store.Cluster); ok {
		ip := netip.MustParseAddr(cfg.cluster.underlayIP) // validated with the flags
		underlay = &datapath.Underlay{LocalIP: ip, Kind: cfg.cluster.tunnel}
		// Before the controller reads the state (store.Join says why).
		if err := store.Join(ctx, cluster, store.Host{Name: cfg.cluster.hostName, UnderlayIP: ip}, abort); err != nil {
			return err
		}
	}
	connect := func(ctx context.Context) (datapath.Backend, error) {
		return backend.Open(ctx, backend.Config{
			Kind: cfg.backend, OVSDB: cfg.ovsdb, Bridge: cfg.bridge, DatapathType: cfg.datapathType,
			OpenFlowListen: cfg.openflowListen, VswitchdCtl: cfg.vswitchdCtl, SparePorts: cfg.sparePorts, Registerer: reg, Log: log,
			OpenFlowCert: cfg.openflowCert, OpenFlowKey: cfg.openflowKey, OpenFlowCA: cfg.openflowCA,
			Underlay: underlay, Owner: self, Lost: abort,
		})
	}
	ran := make(chan error, 1)
	go func() {
		err := ctl.Run(ctx, connect)
		if errors.Is(err, controller.ErrEmptyState) {
			refused.Store(true)
			err = emptyStateRefusal(cfg, created, err)
		}
		// Run ends by itself only to refuse the start: so does the daemon.
		stop()
		ran <- err
	}()

	select {
	case err = <-served:
		stop()
	case <-ctx.Done():
	}
	log.Info("shutting down; the dataplane keeps forwarding")
	// A stop must end the daemon, whatever holds it up: a request or a
	// reconcile stuck in the kernel is abandoned at the bound, and the last
	// resort covers what comes after (the store's close). The dataplane
	// forwards without the daemon; the next start reconciles.
	backstop := time.AfterFunc(shutdownTimeout+exitGrace, func() {
		log.Error("shutdown not done in time; exiting", "after", shutdownTimeout+exitGrace)
		os.Exit(1)
	})
	defer backstop.Stop()
	shutdown, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = errors.Join(err, srv.Shutdown(shutdown))
	select {
	case runErr := <-ran:
		if !errors.Is(runErr, context.Canceled) {
			err = errors.Join(err, runErr)
		}
	case <-shutdown.Done():
		err = errors.Join(err, fmt.Errorf("the controller did not stop within %s: a change was still under way", shutdownTimeout))
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	select {
	case quitErr := <-quit:
		err = errors.Join(quitErr, err)
	default:
	}
	return err
}

// Bounds of a stop: requests and the controller get shutdownTimeout to
// finish, everything after exitGrace more.
const (
	shutdownTimeout = 10 * time.Second
	exitGrace       = 5 * time.Second
)

// openStore opens the desired-state store: the cluster's in etcd, waiting
// for it as long as it takes, or this host's own file in the state directory.
func openStore(ctx context.Context, cfg config, log *slog.Logger) (store.Store, error) {
	cl := cfg.cluster
	if cl.etcdEndpoints == "" {
		return store.Open(filepath.Join(cfg.stateDir, stateDB))
	}
	st, err := store.WaitEtcd(ctx, store.EtcdConfig{
		Endpoints: cl.endpoints(), Prefix: cl.etcdPrefix,
		CertFile: cl.etcdCert, KeyFile: cl.etcdKey, CAFile: cl.etcdCA,
		LeaseTTL: cl.hostLease, Log: log.With("component", "etcd"),
	})
	if err != nil {
		return nil, err // not a nil *Etcd in a non-nil Store
	}
	return st, nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

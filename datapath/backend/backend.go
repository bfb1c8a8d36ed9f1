// Package backend chooses and opens the datapath backend named by the daemon's
// --backend flag.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/linux"
	"github.com/ovs-vnet/ovs-vnet/datapath/natnft"
	"github.com/ovs-vnet/ovs-vnet/datapath/ovs"
	"github.com/ovs-vnet/ovs-vnet/ovsdb"
)

// probeTimeout is how long "auto" waits for OVSDB to answer before it settles
// for the Linux backend.
const probeTimeout = 2 * time.Second

// Config is what opening a backend needs.
type Config struct {
	Kind           string // auto, ovs or linux
	OVSDB          string // OVSDB endpoint
	OpenFlowListen string // controller address for the OVS bridge
	// OpenFlowCert, OpenFlowKey and OpenFlowCA are the PEM files of an
	// ssl: OpenFlowListen.
	OpenFlowCert, OpenFlowKey, OpenFlowCA string
	// Registerer takes the backend's own series (OVS: the OpenFlow
	// controller's); Open may be called again with the same one.
	Registerer   prometheus.Registerer
	Bridge       string // integration bridge (OVS) or bridge-name prefix (Linux)
	DatapathType string // auto, system or netdev
	// VswitchdCtl is ovs-vswitchd's control socket, read for datapath
	// metrics: "auto" finds it beside a unix: OVSDB socket at each read.
	VswitchdCtl string
	SparePorts  int // veth pairs kept ready on the OVS bridge
	// Underlay joins the host to a cluster; nil for a single host.
	Underlay *datapath.Underlay
	Log      *slog.Logger
	// Owner is this daemon, as the OVS bridge's ownership record names it.
	Owner Identity
	// Lost is told when the OVS bridge's lock is no longer this daemon's
	// (ovs.Config.Lost).
	Lost func(error)
}

// Open connects the backend cfg names. "auto" picks OVS when the OVSDB endpoint
// answers, else Linux; the choice is made at each start.
func Open(ctx context.Context, cfg Config) (datapath.Backend, error) {
	switch cfg.Kind {
	case "ovs":
		return openOVS(ctx, cfg)
	case "linux":
		return linux.New(ctx, cfg.Bridge, cfg.Underlay, linux.WithLog(cfg.Log))
	case "auto":
		probe, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		b, err := openOVS(probe, cfg)
		if err == nil || errors.Is(err, datapath.ErrTaken) {
			// OVS answered: its bridge being another daemon's is no
			// reason to fall back on another backend.
			return b, err
		}
		cfg.Log.Info("OVS not available, using the Linux backend", "ovsdb", cfg.OVSDB, "err", err)
		return linux.New(ctx, cfg.Bridge, cfg.Underlay, linux.WithLog(cfg.Log))
	default:
		return nil, fmt.Errorf("unknown backend %q: want auto, ovs or linux", cfg.Kind)
	}
}

func openOVS(ctx context.Context, cfg Config) (datapath.Backend, error) {
	db, err := ovsdb.Dial(ctx, cfg.OVSDB, cfg.Log.With("component", "ovsdb"))
	if err != nil {
		return nil, err
	}
	b, err := ovs.New(ctx, db, ovs.Config{
		Bridge: cfg.Bridge, DatapathType: ovs.DatapathType(cfg.DatapathType), OpenFlowListen: cfg.OpenFlowListen,
		OpenFlowCert: cfg.OpenFlowCert, OpenFlowKey: cfg.OpenFlowKey, OpenFlowCA: cfg.OpenFlowCA,
		VswitchdCtl: vswitchdCtl(cfg.VswitchdCtl), SparePorts: cfg.SparePorts, Registerer: cfg.Registerer, Log: cfg.Log,
		Underlay: cfg.Underlay, Owner: cfg.Owner.String(), Lost: cfg.Lost,
		NAT: &ovs.NATHost{Installed: natnft.Installed, Stats: natnft.ReadStats, Forget: natnft.Forget},
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

// vswitchdCtl maps the flag to ovs.Config's convention: "" finds the socket
// at each read, so a restarted ovs-vswitchd (a new pid, a new name) is found.
func vswitchdCtl(flag string) string {
	if flag == "auto" {
		return ""
	}
	return flag
}

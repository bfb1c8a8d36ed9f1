package ovs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
	"github.com/ovs-vnet/ovs-vnet/ovsdb"
)

// A test that plays several hosts needs a Backend per host, each in its
// host's network namespace: the backend's links, routes, nftables table and
// OpenFlow listener live in the namespace of the process that runs it, and a
// Go process cannot keep all its threads in another one (goroutines the
// backend starts run on any thread). So each host's backend runs in an agent:
// this test binary, started under `ip netns exec`, that serves commands as
// JSON lines on stdin and answers each with one JSON line on stdout.

// agentEnv makes the test binary an agent (TestMain).
const agentEnv = "OVS_VNET_TEST_AGENT"

// agentCallTimeout bounds one command, in the agent and in the test.
const agentCallTimeout = 45 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv(agentEnv) != "" {
		os.Exit(runAgent(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// agentConfig is what New gets in an agent.
type agentConfig struct {
	DB          string // OVSDB endpoint
	Bridge      string
	Listen      string // OpenFlow listener, inside the host's namespace
	VswitchdCtl string
	Underlay    *datapath.Underlay
	SparePorts  int
	// PickupWindow is Config.PickupWindow.
	PickupWindow time.Duration
}

type agentCmd struct {
	Op      string // new, network, router, attach, detach, check, drain, changed, remote, prune, flows, trace, policy, policy-stats, switch-stats, nat, nat-stats, dhcp-stats, end-pickup, close
	Config  agentConfig
	Network model.Network
	Router  model.Router
	Port    model.Port
	Remote  []model.RemotePort
	State   datapath.State
	Query   v1.Query
	Policy  model.Policy
	NAT     model.NAT
}

type agentReply struct {
	Error string
	// Check is CheckPort's sentinel: ok, link_gone, netns_gone,
	// not_bound; Detail its error.
	Check, Detail string
	// Changed: Changed was signalled (drain, changed).
	Changed     bool
	Port        model.Port
	Flows       []v1.Flow
	Trace       v1.Result
	PolicyStats datapath.PolicyStats
	SwitchStats datapath.SwitchStats
	DHCPStats   datapath.DHCPStats
	NATStats    datapath.NATStats
}

// runAgent serves commands until stdin closes or a close command; it
// returns the exit status.
func runAgent(in io.Reader, out io.Writer) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dec, enc := json.NewDecoder(bufio.NewReader(in)), json.NewEncoder(out)
	var b *Backend
	defer func() {
		if b != nil {
			b.Close()
		}
	}()
	for {
		var c agentCmd
		if err := dec.Decode(&c); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			log.Error("agent: read command", "err", err)
			return 1
		}
		if c.Op == "close" {
			_ = enc.Encode(agentReply{})
			return 0
		}
		var r agentReply
		ctx, cancel := context.WithTimeout(context.Background(), agentCallTimeout)
		err := agentDo(ctx, &b, c, &r, log)
		cancel()
		if err != nil {
			r.Error = err.Error()
		}
		if err := enc.Encode(r); err != nil {
			log.Error("agent: write reply", "err", err)
			return 1
		}
	}
}

func agentDo(ctx context.Context, b **Backend, c agentCmd, r *agentReply, log *slog.Logger) error {
	if c.Op != "new" && *b == nil {
		return fmt.Errorf("%s before new", c.Op)
	}
	var err error
	switch c.Op {
	case "new":
		db, derr := ovsdb.Dial(ctx, c.Config.DB, log)
		if derr != nil {
			return derr
		}
		*b, err = New(ctx, db, Config{Bridge: c.Config.Bridge, DatapathType: "netdev", OpenFlowListen: c.Config.Listen,
			VswitchdCtl: c.Config.VswitchdCtl, Underlay: c.Config.Underlay, SparePorts: c.Config.SparePorts, Log: log,
			Registerer: prometheus.NewRegistry(), NAT: testNATHost(),
			PickupWindow: c.Config.PickupWindow})
		if err != nil {
			db.Close()
		}
	case "network":
		err = (*b).EnsureNetwork(ctx, c.Network)
	case "delete-network":
		err = (*b).DeleteNetwork(ctx, c.Network)
	case "router":
		err = (*b).EnsureRouter(ctx, c.Router)
	case "attach":
		r.Port, err = (*b).AttachPort(ctx, c.Network, c.Port)
	case "detach":
		err = (*b).DetachPort(ctx, c.Network, c.Port)
	case "check":
		r.Check, r.Detail, err = checkKind((*b).CheckPort(ctx, c.Network, c.Port, datapath.CheckAll))
	case "drain":
		select {
		case <-(*b).Changed():
			r.Changed = true
		default:
		}
	case "changed":
		select {
		case <-(*b).Changed():
			r.Changed = true
		case <-ctx.Done():
		}
	case "remote":
		err = (*b).SetRemotePorts(ctx, c.Remote)
	case "prune":
		err = (*b).Prune(ctx, c.State)
	case "flows":
		r.Flows, err = (*b).Flows(ctx, c.State)
	case "trace":
		r.Trace, err = (*b).Trace(ctx, c.State, c.Query)
	case "policy":
		err = (*b).SetPolicy(ctx, c.Policy)
	case "policy-stats":
		r.PolicyStats, err = (*b).PolicyStats(ctx)
	case "switch-stats":
		r.SwitchStats, err = (*b).SwitchStats(ctx)
	case "nat":
		err = (*b).SetNAT(ctx, c.NAT)
	case "nat-stats":
		r.NATStats, err = (*b).NATStats(ctx)
	case "dhcp-stats":
		r.DHCPStats, err = (*b).DHCPStats(ctx)
	case "end-pickup":
		// What the window's timer does when its time is up.
		(*b).mu.Lock()
		n := (*b).state.pickup
		(*b).mu.Unlock()
		err = (*b).closePickup(ctx, n)
	default:
		err = fmt.Errorf("unknown op %q", c.Op)
	}
	return err
}

// checkKind names CheckPort's verdict; an error that is none is the
// check's own failure.
func checkKind(err error) (kind, detail string, _ error) {
	switch {
	case err == nil:
		return "ok", "", nil
	case errors.Is(err, datapath.ErrNoNetns):
		return "netns_gone", err.Error(), nil
	case errors.Is(err, datapath.ErrLinkGone):
		return "link_gone", err.Error(), nil
	case errors.Is(err, datapath.ErrNotBound):
		return "not_bound", err.Error(), nil
	}
	return "", "", err
}

// agent is the test's handle on one.
type agent struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *json.Decoder
	// log is the agent's stderr, shown when the test fails.
	log testbed.SyncBuffer
}

// startAgent runs an agent in network namespace ns and stops it at the
// cleanup of owner: the whole test's, when a subtest starts an agent that
// later subtests use.
func startAgent(t *testing.T, owner testing.TB, name, ns string) *agent {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{name: name}
	a.cmd = exec.Command("ip", "netns", "exec", ns, self)
	a.cmd.Env = append(os.Environ(), agentEnv+"=1")
	a.cmd.Stderr = &a.log
	if a.in, err = a.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	a.out = json.NewDecoder(stdout)
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	owner.Cleanup(func() {
		a.stop()
		// The agent is the race-built test binary: the backend's calls
		// run there, and a race in them fails the test here.
		testbed.CheckRace(owner, "agent "+a.name, a.log.String(), a.cmd.ProcessState)
		if owner.Failed() {
			owner.Logf("agent %s (%s) log:\n%s", a.name, ns, a.log.String())
		}
	})
	return a
}

// call sends one command and returns its answer; the agent is killed if it
// does not answer in time.
func (a *agent) call(c agentCmd) (agentReply, error) {
	if err := json.NewEncoder(a.in).Encode(c); err != nil {
		return agentReply{}, fmt.Errorf("agent %s: send %s: %w", a.name, c.Op, err)
	}
	type answer struct {
		r   agentReply
		err error
	}
	got := make(chan answer, 1)
	go func() {
		var r agentReply
		err := a.out.Decode(&r)
		got <- answer{r, err}
	}()
	select {
	case ans := <-got:
		if ans.err != nil {
			return agentReply{}, fmt.Errorf("agent %s: %s: read answer: %w", a.name, c.Op, ans.err)
		}
		if ans.r.Error != "" {
			return ans.r, fmt.Errorf("agent %s: %s: %s", a.name, c.Op, ans.r.Error)
		}
		return ans.r, nil
	case <-time.After(agentCallTimeout + 5*time.Second):
		_ = a.cmd.Process.Kill()
		return agentReply{}, fmt.Errorf("agent %s: %s: no answer in time", a.name, c.Op)
	}
}

// do is call that fails the test on error.
func (a *agent) do(t *testing.T, c agentCmd) agentReply {
	t.Helper()
	r, err := a.call(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stop asks the agent to close its backend and exit; a stuck one is killed.
// Safe to call twice.
func (a *agent) stop() {
	if a.cmd.ProcessState != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		_ = json.NewEncoder(a.in).Encode(agentCmd{Op: "close"})
		a.in.Close()
		_ = a.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
	}
}

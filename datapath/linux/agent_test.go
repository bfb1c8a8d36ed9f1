package linux

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// The cluster test needs a backend per "host", each acting on its host's
// network namespace, netlink sockets and nft runs alike. A thread switched
// into a namespace would do for one host at a time, but two backends in one
// process would share one set of assumptions about where "the host" is; a
// process per host is what the daemon is. So the test binary doubles as a
// host agent: run under `ip netns exec HOST` with agentEnv set, it serves
// backend calls read as JSON lines from stdin.

const agentEnv = "OVS_VNET_LINUX_TEST_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(agentEnv) == "1" {
		os.Exit(runAgent(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// agentReq is one backend call; Op names it.
type agentReq struct {
	Op       string             `json:"op"`
	Prefix   string             `json:"prefix,omitempty"`
	Underlay *datapath.Underlay `json:"underlay,omitempty"`
	Network  model.Network      `json:"network"`
	Router   model.Router       `json:"router"`
	Port     model.Port         `json:"port"`
	Remote   []model.RemotePort `json:"remote,omitempty"`
	State    datapath.State     `json:"state"`
}

type agentResp struct {
	Err string `json:"err,omitempty"`
	// NoDHCP is the backend's Info().NoDHCP, after any call.
	NoDHCP string `json:"no_dhcp,omitempty"`
}

// agentCallTimeout bounds each backend call in the agent.
const agentCallTimeout = 20 * time.Second

func runAgent(in io.Reader, out io.Writer) int {
	dec, enc := json.NewDecoder(bufio.NewReader(in)), json.NewEncoder(out)
	var b *Backend
	for {
		var req agentReq
		if err := dec.Decode(&req); err != nil {
			if err == io.EOF {
				return 0
			}
			fmt.Fprintln(os.Stderr, "agent: read request:", err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), agentCallTimeout)
		err := agentDo(ctx, &b, req)
		cancel()
		var resp agentResp
		if err != nil {
			resp.Err = err.Error()
		}
		if b != nil {
			resp.NoDHCP = b.Info().NoDHCP
		}
		if err := enc.Encode(resp); err != nil {
			fmt.Fprintln(os.Stderr, "agent: write response:", err)
			return 1
		}
	}
}

func agentDo(ctx context.Context, b **Backend, req agentReq) error {
	if req.Op == "new" {
		nb, err := New(ctx, req.Prefix, req.Underlay)
		*b = nb
		return err
	}
	if *b == nil {
		return fmt.Errorf("%s before new", req.Op)
	}
	switch req.Op {
	case "network":
		return (*b).EnsureNetwork(ctx, req.Network)
	case "delete-network":
		return (*b).DeleteNetwork(ctx, req.Network)
	case "router":
		return (*b).EnsureRouter(ctx, req.Router)
	case "attach":
		_, err := (*b).AttachPort(ctx, req.Network, req.Port)
		return err
	case "remote":
		return (*b).SetRemotePorts(ctx, req.Remote)
	case "prune":
		return (*b).Prune(ctx, req.State)
	default:
		return fmt.Errorf("unknown op %q", req.Op)
	}
}

// agent is the test's end of one host agent.
type agent struct {
	t      *testing.T
	ns     string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	resp   chan agentResp
	stderr *testbed.SyncBuffer
	stop   sync.Once
}

// startAgent runs the test binary as an agent inside the host namespace ns,
// under the command wrap if given (setpriv, to run it with fewer
// capabilities). It stops at cleanup, failed test or not.
func startAgent(t *testing.T, ns string, wrap ...string) *agent {
	t.Helper()
	a := &agent{t: t, ns: ns, resp: make(chan agentResp), stderr: &testbed.SyncBuffer{}}
	argv := append(wrap, "ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Env = append(os.Environ(), agentEnv+"=1")
	a.cmd.Stderr = a.stderr
	var err error
	if a.stdin, err = a.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent in %s: %v", ns, err)
	}
	go func() {
		defer close(a.resp)
		dec := json.NewDecoder(stdout)
		for {
			var r agentResp
			if dec.Decode(&r) != nil {
				return
			}
			a.resp <- r
		}
	}()
	t.Cleanup(a.close)
	return a
}

// close ends the agent: EOF on stdin, then a kill if it lingers.
func (a *agent) close() {
	a.stop.Do(func() {
		_ = a.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- a.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				a.t.Errorf("agent in %s: %v\n%s", a.ns, err, a.stderr)
			}
		case <-time.After(10 * time.Second):
			_ = a.cmd.Process.Kill()
			<-done
			a.t.Errorf("agent in %s did not stop; killed\n%s", a.ns, a.stderr)
		}
		// The agent is the race-built test binary: the backend's calls
		// run there, and a race in them fails the test here.
		testbed.CheckRace(a.t, "agent in "+a.ns, a.stderr.String(), a.cmd.ProcessState)
	})
}

// call runs one backend call in the agent and returns its error.
func (a *agent) call(req agentReq) error {
	a.t.Helper()
	_, err := a.do(req)
	return err
}

// do runs one backend call in the agent and returns its answer.
func (a *agent) do(req agentReq) (agentResp, error) {
	a.t.Helper()
	data, err := json.Marshal(req)
	if err != nil {
		a.t.Fatal(err)
	}
	if _, err := a.stdin.Write(append(data, '\n')); err != nil {
		a.t.Fatalf("agent in %s: send %s: %v\n%s", a.ns, req.Op, err, a.stderr)
	}
	select {
	case r, ok := <-a.resp:
		if !ok {
			a.t.Fatalf("agent in %s died during %s\n%s", a.ns, req.Op, a.stderr)
		}
		if r.Err != "" {
			return r, fmt.Errorf("%s in %s: %s", req.Op, a.ns, r.Err)
		}
		return r, nil
	case <-time.After(agentCallTimeout + 5*time.Second):
		a.t.Fatalf("agent in %s: no answer to %s\n%s", a.ns, req.Op, a.stderr)
		return agentResp{}, nil
	}
}

// must is call that fails the test on error.
func (a *agent) must(req agentReq) {
	a.t.Helper()
	if err := a.call(req); err != nil {
		a.t.Fatal(err)
	}
}

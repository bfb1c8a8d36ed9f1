package ofconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// fakeSwitch answers the handshake on one end of a pipe and then either
// echoes (alive) or goes silent. It answers every multipart request with
// table statistics.
func fakeSwitch(t *testing.T, nc net.Conn, dpid uint64, alive bool) {
	t.Helper()
	go func() {
		defer nc.Close()
		// A pipe has no buffer: take our HELLO before sending its own.
		if _, err := readFrame(nc); err != nil {
			return
		}
		hello, _ := openflow.Marshal(1, &openflow.Hello{Versions: []uint8{1, 4, 6}})
		if _, err := nc.Write(hello); err != nil {
			return
		}
		for {
			raw, err := readFrame(nc)
			if err != nil {
				return
			}
			h, _ := openflow.ParseHeader(raw)
			var reply openflow.Message
			switch h.Type {
			case openflow.TypeFeaturesRequest:
				reply = &openflow.FeaturesReply{DatapathID: dpid, NTables: 254}
			case openflow.TypeEchoRequest, openflow.TypeBarrierRequest:
				if !alive {
					continue
				}
				reply = &openflow.BarrierReply{}
				if h.Type == openflow.TypeEchoRequest {
					reply = &openflow.EchoReply{}
				}
			case openflow.TypeMultipartRequest:
				// Table statistics, whatever was asked.
				reply = &openflow.MultipartReply{Body: &openflow.TableStatsReply{Stats: []openflow.TableStats{{TableID: 0, ActiveCount: 3}}}}
			default:
				continue
			}
			out, _ := openflow.Marshal(h.Xid, reply)
			if _, err := nc.Write(out); err != nil {
				return
			}
		}
	}()
}

func TestHandshakeAndKeepalive(t *testing.T) {
	for _, alive := range []bool{true, false} {
		t.Run(fmt.Sprintf("alive=%v", alive), func(t *testing.T) {
			ours, theirs := net.Pipe()
			fakeSwitch(t, theirs, 0xabcd, alive)
			c, err := New(context.Background(), ours, Options{EchoInterval: 40 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.DatapathID() != 0xabcd {
				t.Fatalf("dpid %x", c.DatapathID())
			}
			select {
			case <-c.Done():
				if alive {
					t.Fatalf("live session ended: %v", c.Err())
				}
				if !strings.Contains(c.Err().Error(), "no message from the switch") {
					t.Fatalf("ended for %v", c.Err())
				}
			case <-time.After(400 * time.Millisecond):
				if !alive {
					t.Fatal("silent switch not detected")
				}
			}
		})
	}
}

func TestRequestDeadline(t *testing.T) {
	ours, theirs := net.Pipe()
	fakeSwitch(t, theirs, 1, false) // never answers barriers
	c, err := New(context.Background(), ours, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Barrier(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline, got %v", err)
	}
	c.mu.Lock()
	n := len(c.pending)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d requests left pending after their deadline", n)
	}
}

func TestStats(t *testing.T) {
	ours, theirs := net.Pipe()
	fakeSwitch(t, theirs, 1, true)
	c, err := New(context.Background(), ours, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tables, err := Stats[*openflow.TableStatsReply](ctx, c, &openflow.TableStatsRequest{})
	if err != nil || len(tables.Stats) != 1 || tables.Stats[0].ActiveCount != 3 {
		t.Fatalf("table stats: %+v, %v", tables, err)
	}
	if _, err := Stats[*openflow.FlowStatsReply](ctx, c, openflow.FlowStatsByCookie(openflow.TableAll, 0, 0)); err == nil ||
		!strings.Contains(err.Error(), "multipart request of type 1 answered with type 3") {
		t.Fatalf("flow stats answered with table stats: err = %v", err)
	}
}

func TestRejectsOldSwitch(t *testing.T) {
	ours, theirs := net.Pipe()
	go func() {
		defer theirs.Close()
		_, _ = readFrame(theirs)
		hello := []byte{0x01, 0x00, 0x00, 0x08, 0, 0, 0, 1} // OpenFlow 1.0 hello, no bitmap
		_, _ = theirs.Write(hello)
	}()
	if _, err := New(context.Background(), ours, Options{}); err == nil || !strings.Contains(err.Error(), "does not speak OpenFlow 1.3") {
		t.Fatalf("got %v", err)
	}
}

// TestAgainstOVS talks to a real ovs-vswitchd: through a bridge's management
// socket, and as the controller the bridge connects to.
func TestAgainstOVS(t *testing.T) {
	box := testbed.StartSandbox(t, "../..", "")
	box.Vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
		"other_config:datapath-id=00000000000000b0", "protocols=OpenFlow13")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c, err := Dial(ctx, box.Mgmt("br0"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.DatapathID() != 0xb0 {
		t.Fatalf("dpid %#x", c.DatapathID())
	}
	if _, err := c.Request(ctx, &openflow.EchoRequest{Data: []byte("ping")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Barrier(ctx); err != nil {
		t.Fatal(err)
	}

	// As a controller: the listener lives in the sandbox's namespace, where vswitchd is.
	var ln net.Listener
	if err := testbed.InNetns(box.Netns, func() (err error) { ln, err = Listen("tcp:127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	got := make(chan *Conn, 1)
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = Serve(serveCtx, ln, Options{}, func(c *Conn) { got <- c }) }()
	box.Vsctl(t, "set-controller", "br0", "tcp:127.0.0.1:"+port)
	select {
	case sc := <-got:
		defer sc.Close()
		if sc.DatapathID() != 0xb0 {
			t.Fatalf("controller session dpid %#x", sc.DatapathID())
		}
		if err := sc.Barrier(ctx); err != nil {
			t.Fatal(err)
		}
		// vswitchd writes its controller status to the database every few seconds.
		for !strings.Contains(box.Vsctl(t, "--columns=is_connected", "list", "controller"), "true") {
			select {
			case <-ctx.Done():
				t.Fatal("ovs never reports the controller connected")
			case <-time.After(200 * time.Millisecond):
			}
		}
	case <-ctx.Done():
		t.Fatal("ovs-vswitchd did not connect to our listener")
	}
}

// TestPacketOutIn sends a frame into a real bridge with PACKET_OUT whose
// action returns it to the controller, and reads it back as PACKET_IN.
func TestPacketOutIn(t *testing.T) {
	box := testbed.StartSandbox(t, "../..", "")
	box.Vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "protocols=OpenFlow13")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, box.Mgmt("br0"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A service connection gets packet-ins only once it asks for them.
	if _, err := c.Send(ctx, &openflow.SetConfig{SwitchConfig: openflow.SwitchConfig{MissSendLen: openflow.MaxLenNoBuffer}}); err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5}) // broadcast, local experimental ethertype
	copy(frame[14:], "ovs-vnet packet-out")
	err = c.SendBatch(ctx, []openflow.Message{&openflow.PacketOut{
		BufferID: openflow.NoBuffer, InPort: openflow.PortController, Data: frame,
		Actions: []openflow.Action{openflow.ActionOutput{Port: openflow.PortController, MaxLen: openflow.MaxLenNoBuffer}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case m := <-c.PacketIns():
			in, ok := m.Body.(*openflow.PacketIn)
			if !ok {
				continue
			}
			if !bytes.Equal(in.Data, frame) || in.Reason != openflow.PacketInAction {
				t.Fatalf("packet-in: reason %d, data %x", in.Reason, in.Data)
			}
			return
		case <-ctx.Done():
			t.Fatal("no packet-in")
		}
	}
}

// Package ofconn runs OpenFlow 1.3 sessions with switches: the handshake,
// keepalive, requests correlated with their replies (and errors) by xid under
// deadlines, a bounded send queue, barriers and multipart reassembly. It knows
// nothing of flows; the reconciler above it does.
package ofconn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// Options tune a session. The zero value gives the defaults.
type Options struct {
	// EchoInterval is how often an idle session sends ECHO_REQUEST
	// (default 5 s); a session that hears nothing for 3 intervals is closed.
	EchoInterval time.Duration
	// HandshakeTimeout bounds HELLO + FEATURES (default 10 s).
	HandshakeTimeout time.Duration
	// SendQueue is how many encoded messages may wait for the socket
	// (default 1024); Send blocks beyond that, until its context ends.
	SendQueue int
	// AsyncQueue is how many unsolicited messages (port-status,
	// flow-removed, errors of no pending request) may wait for Async's
	// reader (default 256); beyond that they are dropped and counted.
	AsyncQueue int
	// PacketInQueue is the same for packet-ins, which have a queue of
	// their own (PacketIns, default 256) so that a burst of them cannot
	// crowd out the errors the reconciler counts.
	PacketInQueue int
	// MaxMultipartBytes bounds one multipart reply summed over its parts
	// (default openflow.DefaultReassemblyMaxBytes), so a misbehaving switch
	// cannot make us hold unbounded memory; the request then fails.
	MaxMultipartBytes int
	Log               *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.EchoInterval <= 0 {
		o.EchoInterval = 5 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.SendQueue <= 0 {
		o.SendQueue = 1024
	}
	if o.AsyncQueue <= 0 {
		o.AsyncQueue = 256
	}
	if o.PacketInQueue <= 0 {
		o.PacketInQueue = 256
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// ErrClosed is returned by calls on a session that has ended; Err tells why.
var ErrClosed = errors.New("openflow session closed")

// Message is one received message: its header, decoded body (nil when the
// codec does not model it) and raw bytes.
type Message struct {
	Header openflow.Header
	Body   openflow.Message
	Raw    []byte
}

// Conn is one handshaken session with a switch.
type Conn struct {
	nc       net.Conn
	opts     Options
	features openflow.FeaturesReply

	xid     atomic.Uint32
	sendq   chan []byte
	async   chan Message
	dropped atomic.Uint64
	// packetIns and droppedIns are async and dropped for packet-ins.
	packetIns  chan Message
	droppedIns atomic.Uint64
	heard      atomic.Int64 // unix nanos of the last message received

	mu      sync.Mutex
	pending map[uint32]*call

	done    chan struct{}
	errOnce sync.Once
	err     error
}

// call waits for the reply to one request, or collects the error a
// reply-less message (a flow-mod) drew before the barrier behind it.
type call struct {
	// asm joins the parts of a multipart reply; nil for other requests.
	asm    *openflow.Reassembler
	result chan callResult
}

type callResult struct {
	msg       Message                  // the reply (an error's message, for a RequestError)
	multipart *openflow.MultipartReply // the joined reply of a multipart request
	err       error
}

// New runs the handshake on an established connection and starts the
// session. It takes ownership of nc.
func New(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	c := &Conn{
		nc:        nc,
		opts:      opts,
		sendq:     make(chan []byte, opts.SendQueue),
		async:     make(chan Message, opts.AsyncQueue),
		packetIns: make(chan Message, opts.PacketInQueue),
		pending:   map[uint32]*call{},
		done:      make(chan struct{}),
	}
	c.heard.Store(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
	defer cancel()
	if err := c.hello(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("openflow handshake with %s: %w", nc.RemoteAddr(), err)
	}
	go c.readLoop()
	go c.writeLoop()
	go c.keepalive()
	reply, err := c.Request(ctx, &openflow.FeaturesRequest{})
	if err == nil {
		if f, ok := reply.Body.(*openflow.FeaturesReply); ok {
			c.features = *f
		} else {
			err = fmt.Errorf("FEATURES_REQUEST answered with %s", reply.Header.Type)
		}
	}
	if err != nil {
		c.fail(err)
		return nil, fmt.Errorf("openflow handshake with %s: %w", nc.RemoteAddr(), err)
	}
	opts.Log.Debug("openflow session up", "peer", nc.RemoteAddr(), "datapath", fmt.Sprintf("%016x", c.features.DatapathID))
	return c, nil
}

// hello exchanges HELLOs and checks that the peer speaks OpenFlow 1.3.
func (c *Conn) hello(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(d)
		defer c.nc.SetDeadline(time.Time{})
	}
	out, err := openflow.Marshal(c.xid.Add(1), &openflow.Hello{Versions: []uint8{openflow.Version}})
	if err != nil {
		return err
	}
	if _, err := c.nc.Write(out); err != nil {
		return fmt.Errorf("send HELLO: %w", err)
	}
	raw, err := readFrame(c.nc)
	if err != nil {
		return fmt.Errorf("read HELLO: %w", err)
	}
	h, hello, err := openflow.DecodeHello(raw)
	if err != nil {
		return err
	}
	if !hello.Supports(h.Version) {
		return fmt.Errorf("peer does not speak OpenFlow 1.3 (header version %#x, versions %v)", h.Version, hello.Versions)
	}
	return nil
}

// readFrame reads one whole message, trusting its length field only after
// checking it against the header size; OpenFlow caps it at 64 KiB anyway.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [openflow.HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[2:]))
	if n < openflow.HeaderLen {
		return nil, fmt.Errorf("%w: length %d shorter than the header", openflow.ErrMalformed, n)
	}
	buf := make([]byte, n)
	copy(buf, hdr[:])
	if _, err := io.ReadFull(r, buf[openflow.HeaderLen:]); err != nil {
		return nil, err
	}
	return buf, nil
}

// DatapathID identifies the switch.
func (c *Conn) DatapathID() uint64 { return c.features.DatapathID }

// Features is the switch's FEATURES_REPLY.
func (c *Conn) Features() openflow.FeaturesReply { return c.features }

// Done is closed when the session ends.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the session ended, nil while it runs.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the session.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	return nil
}

// Async delivers unsolicited messages but packet-ins: port-status,
// flow-removed, and errors that answer no pending request.
func (c *Conn) Async() <-chan Message { return c.async }

// DroppedAsync counts unsolicited messages dropped because Async was not read.
func (c *Conn) DroppedAsync() uint64 { return c.dropped.Load() }

// PacketIns delivers the switch's packet-ins.
func (c *Conn) PacketIns() <-chan Message { return c.packetIns }

// DroppedPacketIns counts packet-ins dropped because PacketIns was not read.
func (c *Conn) DroppedPacketIns() uint64 { return c.droppedIns.Load() }

func (c *Conn) fail(err error) {
	c.errOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		pending := c.pending
		c.pending = map[uint32]*call{}
		c.mu.Unlock()
		close(c.done)
		c.nc.Close()
		for _, p := range pending {
			p.result <- callResult{err: fmt.Errorf("%w: %w", ErrClosed, err)}
		}
	})
}

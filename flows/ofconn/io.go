package ofconn

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
)

// writeTimeout bounds one write to the socket: a switch that stops reading
// ends the session instead of stalling every sender.
const writeTimeout = 10 * time.Second

// RequestError is the switch's OFPT_ERROR answer to one of our messages.
type RequestError struct {
	Xid  uint32
	Type uint16 // ofp_error_type
	Code uint16
	Data []byte // the start of the offending message, as the switch echoed it
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("switch rejected message xid %#x: OpenFlow error type %d code %d", e.Xid, e.Type, e.Code)
}

func requestError(m Message) *RequestError {
	body := m.Raw[openflow.HeaderLen:]
	e := &RequestError{Xid: m.Header.Xid}
	if len(body) >= 4 {
		e.Type, e.Code = binary.BigEndian.Uint16(body), binary.BigEndian.Uint16(body[2:])
		e.Data = body[4:]
	}
	return e
}

func (c *Conn) readLoop() {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		raw, err := readFrame(r)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		c.heard.Store(time.Now().UnixNano())
		h, body, err := openflow.Unmarshal(raw)
		if h.Version != openflow.Version {
			c.fail(fmt.Errorf("switch sent version %#x after agreeing on %#x", h.Version, openflow.Version))
			return
		}
		if err != nil {
			// Kept with a nil body: a message we cannot decode may still
			// answer a request (a reply we do not model) or be counted.
			c.opts.Log.Debug("openflow message not decoded", "type", h.Type, "xid", h.Xid, "err", err)
		}
		m := Message{Header: h, Body: body, Raw: raw}
		if h.Type == openflow.TypeEchoRequest {
			c.answerEcho(m)
			continue
		}
		c.deliver(m)
	}
}

func (c *Conn) answerEcho(m Message) {
	reply := append([]byte(nil), m.Raw...)
	reply[1] = byte(openflow.TypeEchoReply)
	select {
	case c.sendq <- reply:
	default:
		// A full send queue means the socket is slower than our senders; the
		// echo will be asked again, and silence would only end the session.
	}
}

// deliver hands a message to the request waiting for its xid, or to Async.
func (c *Conn) deliver(m Message) {
	c.mu.Lock()
	p, ok := c.pending[m.Header.Xid]
	if ok {
		switch {
		case m.Header.Type == openflow.TypeError:
			delete(c.pending, m.Header.Xid)
			p.result <- callResult{msg: m, err: requestError(m)}
		case p.asm != nil && m.Header.Type == openflow.TypeMultipartReply:
			reply, done, err := p.asm.Add(m.Raw)
			if err != nil || done {
				delete(c.pending, m.Header.Xid)
				p.result <- callResult{multipart: reply, err: err}
			}
		default:
			delete(c.pending, m.Header.Xid)
			p.result <- callResult{msg: m}
		}
	}
	c.mu.Unlock()
	if ok || m.Header.Type == openflow.TypeEchoReply {
		return
	}
	queue, dropped := c.async, &c.dropped
	if m.Header.Type == openflow.TypePacketIn {
		queue, dropped = c.packetIns, &c.droppedIns
	}
	select {
	case queue <- m:
	default:
		dropped.Add(1)
	}
}

func (c *Conn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	for {
		select {
		case <-c.done:
			return
		case b := <-c.sendq:
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err := w.Write(b)
			// Coalesce whatever else is queued into the same writes: a
			// bundle of 100,000 flow-mods must not cost 100,000 syscalls.
			for more := true; more && err == nil; {
				select {
				case b = <-c.sendq:
					_, err = w.Write(b)
				default:
					more = false
				}
			}
			if err == nil {
				err = w.Flush()
			}
			if err != nil {
				c.fail(fmt.Errorf("write: %w", err))
				return
			}
		}
	}
}

func (c *Conn) keepalive() {
	t := time.NewTicker(c.opts.EchoInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			silent := time.Since(time.Unix(0, c.heard.Load()))
			if silent > 3*c.opts.EchoInterval {
				c.fail(fmt.Errorf("no message from the switch for %v", silent.Round(time.Millisecond)))
				return
			}
			if silent >= c.opts.EchoInterval {
				ctx, cancel := context.WithTimeout(context.Background(), c.opts.EchoInterval)
				_, _ = c.Send(ctx, &openflow.EchoRequest{})
				cancel()
			}
		}
	}
}

// enqueue queues an encoded message, waiting for room until ctx ends.
func (c *Conn) enqueue(ctx context.Context, b []byte) error {
	select {
	case c.sendq <- b:
		return nil
	case <-c.done:
		return fmt.Errorf("%w: %w", ErrClosed, c.err)
	case <-ctx.Done():
		return fmt.Errorf("queue message: %w", context.Cause(ctx))
	}
}

// Send queues a message that expects no reply and returns its xid.
func (c *Conn) Send(ctx context.Context, m openflow.Message) (uint32, error) {
	xid := c.xid.Add(1)
	b, err := openflow.Marshal(xid, m)
	if err != nil {
		return 0, err
	}
	return xid, c.enqueue(ctx, b)
}

// Request sends a message and waits for its reply (an OFPT_ERROR reply is
// returned as a *RequestError).
func (c *Conn) Request(ctx context.Context, m openflow.Message) (Message, error) {
	r, err := c.roundTrip(ctx, m, nil)
	return r.msg, err
}

// Multipart sends a multipart request and returns the reply with all its
// parts joined, refusing one beyond Options.MaxMultipartBytes.
func (c *Conn) Multipart(ctx context.Context, m *openflow.MultipartRequest) (*openflow.MultipartReply, error) {
	r, err := c.roundTrip(ctx, m, &openflow.Reassembler{MaxBytes: c.opts.MaxMultipartBytes})
	return r.multipart, err
}

// Stats sends a statistics (multipart) request and returns the reply's
// body as the type that answers it; a reply of another type is an error.
func Stats[R openflow.MultipartReplyBody](ctx context.Context, c *Conn, req openflow.MultipartRequestBody) (R, error) {
	var none R
	reply, err := c.Multipart(ctx, &openflow.MultipartRequest{Body: req})
	if err != nil {
		return none, err
	}
	body, ok := reply.Body.(R)
	if !ok {
		return none, fmt.Errorf("multipart request of type %d answered with type %d", req.MultipartType(), reply.Body.MultipartType())
	}
	return body, nil
}

func (c *Conn) roundTrip(ctx context.Context, m openflow.Message, asm *openflow.Reassembler) (callResult, error) {
	xid := c.xid.Add(1)
	b, err := openflow.Marshal(xid, m)
	if err != nil {
		return callResult{}, err
	}
	p := c.register(xid, asm)
	if err := c.enqueue(ctx, b); err != nil {
		c.unregister(xid)
		return callResult{}, err
	}
	select {
	case r := <-p.result:
		return r, r.err
	case <-ctx.Done():
		c.unregister(xid)
		return callResult{}, fmt.Errorf("%s xid %#x: no reply: %w", m.Type(), xid, context.Cause(ctx))
	}
}

func (c *Conn) register(xid uint32, asm *openflow.Reassembler) *call {
	p := &call{asm: asm, result: make(chan callResult, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		p.result <- callResult{err: fmt.Errorf("%w: %w", ErrClosed, c.err)}
		return p
	}
	c.pending[xid] = p
	return p
}

func (c *Conn) unregister(xid uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, xid)
}

// Barrier waits until the switch has processed everything sent before it.
func (c *Conn) Barrier(ctx context.Context) error {
	_, err := c.Request(ctx, &openflow.BarrierRequest{})
	return err
}

// SendBatch sends messages, then a barrier, and returns the first error the
// switch answered any of them with (a *RequestError), so a caller learns
// which of its flow-mods failed. Errors arrive before the barrier's reply:
// the switch answers in order. Replies that are not errors (a bundle's open
// reply) are accepted, so that a request can lead a batch instead of costing
// a round trip of its own.
func (c *Conn) SendBatch(ctx context.Context, msgs []openflow.Message) error {
	calls := make([]*call, len(msgs))
	xids := make([]uint32, len(msgs))
	defer func() {
		for _, xid := range xids {
			c.unregister(xid)
		}
	}()
	for i, m := range msgs {
		xids[i] = c.xid.Add(1)
		b, err := openflow.Marshal(xids[i], m)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		calls[i] = c.register(xids[i], nil)
		if err := c.enqueue(ctx, b); err != nil {
			return err
		}
	}
	if err := c.Barrier(ctx); err != nil {
		return err
	}
	for i, p := range calls {
		select {
		case r := <-p.result:
			if r.err != nil {
				return fmt.Errorf("message %d (%s): %w", i, msgs[i].Type(), r.err)
			}
		default:
		}
	}
	return nil
}

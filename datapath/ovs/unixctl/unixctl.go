// Package unixctl is a client of the control socket of OVS daemons
// (ovs-vswitchd, ovsdb-server): what `ovs-appctl -t SOCKET COMMAND ARGS...`
// does, without a subprocess.
//
// The protocol is JSON-RPC 1.0 as OVS's lib/jsonrpc.c speaks it: a request
// {"id":ID,"method":COMMAND,"params":[ARG,...]} (every argument a string),
// answered by {"id":ID,"result":TEXT,"error":null} or, when the command
// fails, {"id":ID,"error":TEXT}. Messages are bare JSON objects one after
// the other, with no length prefix or separator: the receiver finds each
// message's end by parsing it (lib/jsonrpc.c, jsonrpc_recv). Each Call uses
// a connection of its own, as ovs-appctl does.
package unixctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// MaxReplyBytes bounds what Call reads from the server for one reply; a
// dpctl/show of a bridge with thousands of ports is a few hundred KiB.
const MaxReplyBytes = 16 << 20

// requestID is the id of the one request a connection carries.
const requestID = 1

// CommandError is the error text the daemon answered a command with, e.g.
// an unknown command or a wrong number of arguments.
type CommandError struct {
	Method  string
	Message string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("unixctl %s: server answered: %s", e.Method, e.Message)
}

type request struct {
	ID     int      `json:"id"`
	Method string   `json:"method"`
	Params []string `json:"params"`
}

type response struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// Call connects to the control socket at path, runs method with args and
// returns the command's text output. ctx bounds everything: the connect,
// the write and the wait for the reply. A command the daemon refuses gives
// a *CommandError.
func Call(ctx context.Context, path, method string, args ...string) (string, error) {
	out, err := call(ctx, path, method, args)
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			return "", err
		}
		return "", fmt.Errorf("unixctl %s on %s: %w", method, path, err)
	}
	return out, nil
}

func call(ctx context.Context, path, method string, args []string) (string, error) {
	if args == nil {
		args = []string{} // params must be an array, never null
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	// A deadline bounds the I/O when ctx has one; closing the connection
	// when ctx ends covers a cancel without a deadline.
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return "", fmt.Errorf("set deadline: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req, err := json.Marshal(request{ID: requestID, Method: method, Params: args})
	if err != nil {
		return "", fmt.Errorf("encode request: %w", err)
	}
	if _, err := conn.Write(req); err != nil {
		return "", fmt.Errorf("send request: %w", ctxErr(ctx, err))
	}
	dec := json.NewDecoder(&limitedReader{r: conn, n: MaxReplyBytes})
	for {
		var resp response
		if err := dec.Decode(&resp); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("connection closed before the reply")
			}
			return "", fmt.Errorf("read reply: %w", ctxErr(ctx, err))
		}
		if resp.Method != "" || string(resp.ID) != fmt.Sprint(requestID) {
			continue // a request or notification of the server's, or not ours
		}
		return parseResponse(method, resp)
	}
}

func parseResponse(method string, resp response) (string, error) {
	if isSet(resp.Error) {
		var msg string
		if err := json.Unmarshal(resp.Error, &msg); err != nil {
			msg = string(resp.Error) // not a string: show it as it came
		}
		return "", &CommandError{Method: method, Message: trimNewline(msg)}
	}
	if !isSet(resp.Result) {
		return "", errors.New("reply has neither result nor error")
	}
	var out string
	if err := json.Unmarshal(resp.Result, &out); err != nil {
		return "", fmt.Errorf("reply result is not text: %s", truncate(resp.Result, 80))
	}
	return out, nil
}

// isSet: present and not JSON null.
func isSet(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

func trimNewline(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// ctxErr names the context's end as the cause when it made the I/O fail.
func ctxErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("%w (%w)", cause, err)
	}
	// The socket's deadline is ctx's, and may fire before ctx's own timer.
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}

// limitedReader fails, rather than ends, once n bytes have been read, so an
// oversized reply is an error and not a truncated message.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("reply larger than %d bytes", MaxReplyBytes)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

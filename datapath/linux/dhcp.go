package linux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// DHCP on this backend (docs/DHCP.md, "DHCP on Linux"): one packet
// socket per port, bound to the port's host end, reads the port's DHCP
// frames before the bridge and its netfilter hooks see them, and the
// answer goes back out of the same host end, straight into the namespace
// or VM: no other port sees it and no rule judges it. The port is known
// from the socket a frame came in on, never from a MAC the frame claims.
// Per port rather than one socket for all, because the bridge hides the
// ingress port from a socket on it, and because each socket has its own
// receive buffer: a flooding port fills its own, never another's.
const (
	// dhcpRcvBuf is a socket's receive buffer: some hundred requests, a
	// whole burst of a booting host's clients with room to spare.
	dhcpRcvBuf = 256 << 10
	// dhcpFrameMax is the longest frame read whole. Clients send requests
	// of a few hundred bytes (RFC 2131's minimum is 576); a longer one is
	// truncated, and refused as malformed.
	dhcpFrameMax = 2048
	// dhcpSendTimeout bounds an answer's send: a packet socket's send
	// does not block unless the host end's queue is full.
	dhcpSendTimeout = 2 * time.Second
	// dhcpPause is how long a port's reader stops reading once the
	// limiter refused one of its frames: the time its bucket takes to
	// get a token back. Meanwhile the kernel queues the port's frames
	// in the socket's buffer and drops the rest (queue_full), at no
	// cost to the daemon, as OVS's meter drops in the datapath.
	dhcpPause = time.Second / dhcp.PortRate
	// dhcpDrainMax bounds the frames read and discarded after a pause:
	// more than a full buffer holds (dhcpRcvBuf, doubled by the kernel,
	// of frames taking at least 512 bytes each), so that a flooding
	// port's next request is not answered behind its stale ones.
	dhcpDrainMax = 2 * dhcpRcvBuf / 512
)

// dhcpServer answers DHCP for the backend's ports from its own view of
// the networks: the backend's mu is held across nft runs, and answers must
// not wait on them.
type dhcpServer struct {
	log        *slog.Logger
	filter     *unix.SockFprog
	gatewayMAC func(network string) string
	limiter    *dhcp.Limiter
	counters   dhcp.Counters
	declines   dhcp.Declines
	// off says why no port gets a socket: the daemon may not open packet
	// sockets (probeDHCP). Ports attach without DHCP then, their DHCP
	// dropped by their chains (ports.go), and GET /v1/info says why.
	off string
	// dropped are the frames sockets' full buffers dropped
	// (PACKET_STATISTICS, which resets as it is read), counted as
	// queue_full.
	dropped atomic.Uint64

	mu       sync.RWMutex
	networks map[string]model.Network
	sockets  map[string]*dhcpSocket // by port name
}

// dhcpSocket is one port's packet socket. port and ifindex change under
// the server's mu only.
type dhcpSocket struct {
	f       *os.File
	ifindex int
	port    model.Port
	// closed: closeLocked closed it, and the read loop's error is that;
	// done is closed then too, ending a pause. dead: the read loop ended
	// on another error; the next attach opens a new socket.
	closed, dead atomic.Bool
	done         chan struct{}
}

func newDHCPServer(log *slog.Logger, gatewayMAC func(network string) string) (*dhcpServer, error) {
	prog, err := dhcpFilter()
	if err != nil {
		return nil, err
	}
	s := &dhcpServer{log: log, filter: sockFprog(prog), gatewayMAC: gatewayMAC,
		limiter:  dhcp.NewLimiter(dhcp.PortRate, dhcp.PortBurst, dhcp.HostRate, dhcp.HostBurst),
		networks: map[string]model.Network{}, sockets: map[string]*dhcpSocket{}}
	if err := probeDHCP(); err != nil {
		s.off = "ports get no DHCP answers: the daemon cannot open packet sockets (" + err.Error() +
			"); give it CAP_NET_RAW, and AF_PACKET where address families are restricted (systemd's RestrictAddressFamilies), then restart it"
		log.Error("DHCP not offered", "why", s.off)
	}
	return s, nil
}

// probeDHCP opens and closes a packet socket as openDHCPSocket does: what
// the daemon may do is known once, at New, so that a daemon without
// CAP_NET_RAW (or AF_PACKET) attaches its ports without DHCP rather than
// failing every attach. The socket, of protocol 0 and unbound, reads
// nothing.
func probeDHCP() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	return unix.Close(fd)
}

// setNetwork takes a network new or changed (its DHCP fields are mutable).
func (s *dhcpServer) setNetwork(n model.Network) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.networks[n.Name] = n
}

func (s *dhcpServer) deleteNetwork(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.networks, name)
}

// serve answers p's DHCP from the host end of index ifindex, on the
// calling thread's network namespace. A socket already there for p is kept
// while its link is the same; a repair that made the link anew gets a new
// socket. Without packet sockets (off) nothing is served; a socket that
// fails after the probe succeeded is an anomaly, and fails the attach.
func (s *dhcpServer) serve(p model.Port, ifindex int) error {
	if s.off != "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.sockets[p.Name]; old != nil {
		if old.ifindex == ifindex && !old.dead.Load() {
			old.port = p
			return nil
		}
		s.closeLocked(p.Name)
	}
	f, err := openDHCPSocket(p.HostIfname, ifindex, s.filter)
	if err != nil {
		return fmt.Errorf("dhcp socket on %s: %w", p.HostIfname, err)
	}
	sock := &dhcpSocket{f: f, ifindex: ifindex, port: p, done: make(chan struct{})}
	s.sockets[p.Name] = sock
	go s.read(sock)
	return nil
}

// stop closes port's socket, if it has one.
func (s *dhcpServer) stop(port string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked(port)
}

// keep closes the sockets of every port not in ports, and takes networks
// as the whole set (Prune).
func (s *dhcpServer) keep(networks []model.Network, ports []model.Port) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.networks = make(map[string]model.Network, len(networks))
	for _, n := range networks {
		s.networks[n.Name] = n
	}
	want := make(map[string]bool, len(ports))
	for _, p := range ports {
		want[p.Name] = true
	}
	for name := range s.sockets {
		if !want[name] {
			s.closeLocked(name)
		}
	}
}

func (s *dhcpServer) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.sockets {
		s.closeLocked(name)
	}
}

// closeLocked closes port's socket, its drops counted first; the read
// loop ends on the closed file.
func (s *dhcpServer) closeLocked(port string) {
	sock := s.sockets[port]
	if sock == nil {
		return
	}
	s.addDrops(sock)
	sock.closed.Store(true)
	close(sock.done)
	_ = sock.f.Close()
	delete(s.sockets, port)
	s.limiter.Forget(port)
}

// addDrops adds what sock's buffer dropped since the last read.
func (s *dhcpServer) addDrops(sock *dhcpSocket) {
	rc, err := sock.f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			s.dropped.Add(uint64(st.Drops))
		}
	})
}

// stats implements datapath.DHCPServer for the backend.
func (s *dhcpServer) stats(ctx context.Context) (datapath.DHCPStats, error) {
	if err := ctx.Err(); err != nil {
		return datapath.DHCPStats{}, fmt.Errorf("dhcp stats: %w", err)
	}
	s.mu.RLock()
	for _, sock := range s.sockets {
		s.addDrops(sock)
	}
	s.mu.RUnlock()
	snap := s.counters.Snapshot()
	snap.Refused[dhcp.ReasonQueueFull] += s.dropped.Load()
	return datapath.DHCPStats{Requests: snap.Requests, Answers: snap.Answers, Refused: snap.Refused}, nil
}

// openDHCPSocket opens a packet socket bound to the link of index ifindex
// that reads only what dhcpFilter passes. ETH_P_ALL, not ETH_P_IP: the
// kernel hands a frame to sockets of a given protocol only after the
// bridge's receive handler, which keeps every frame it forwards or drops;
// ETH_P_ALL sockets read it before. The socket is made with protocol 0,
// which reads nothing until the bind, so no frame is read before the
// filter is on. Non-blocking and wrapped in an os.File: reads park in the
// runtime's poller, not in an OS thread per port.
func openDHCPSocket(name string, ifindex int, filter *unix.SockFprog) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	setup := []struct {
		what string
		err  func() error
	}{
		{"attach filter", func() error { return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, filter) }},
		// Our own answers, sent on this socket, are not read back.
		{"ignore outgoing", func() error { return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1) }},
		{"receive buffer", func() error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, dhcpRcvBuf) }},
		{"bind", func() error {
			return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex})
		}},
	}
	for _, step := range setup {
		if err := step.err(); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("%s: %w", step.what, err)
		}
	}
	return os.NewFile(uintptr(fd), "dhcp:"+name), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read answers sock's frames until it is closed.
func (s *dhcpServer) read(sock *dhcpSocket) {
	rc, err := sock.f.SyscallConn()
	if err != nil {
		sock.dead.Store(true)
		return
	}
	buf := make([]byte, dhcpFrameMax)
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		switch {
		case sock.closed.Load():
			return
		case err == nil && (rerr == unix.ENETDOWN || rerr == unix.EINTR):
			// ENETDOWN: the link went down, once; the socket reads
			// again when it is up.
			continue
		case err == nil && rerr == nil:
			if !s.answer(sock, buf[:n], time.Now()) && !s.pause(sock, rc, buf) {
				return
			}
			continue
		}
		sock.dead.Store(true)
		s.log.Warn("DHCP socket failed; the port's next attach opens another", "link", sock.f.Name(), "err", errors.Join(err, rerr))
		return
	}
}

// pause stops reading sock for dhcpPause, so that a port over its rate
// costs the daemon a few reads per pause rather than one per frame it
// sends (docs/DHCP.md, "Limits"); then it discards what queued meanwhile,
// counted as rate_limited, so that the port's next request is answered
// at once. It returns false when sock was closed.
func (s *dhcpServer) pause(sock *dhcpSocket, rc syscall.RawConn, buf []byte) bool {
	t := time.NewTimer(dhcpPause)
	defer t.Stop()
	select {
	case <-sock.done:
		return false
	case <-t.C:
	}
	_ = rc.Control(func(fd uintptr) {
		for range dhcpDrainMax {
			if _, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT); err != nil {
				return
			}
			s.counters.Refuse(dhcp.ReasonRateLimited)
		}
	})
	return true
}

// answer answers one frame that came in on sock's port, and reports
// false when the limiter refused it.
func (s *dhcpServer) answer(sock *dhcpSocket, frame []byte, now time.Time) bool {
	s.mu.RLock()
	p := sock.port
	n, known := s.networks[p.Network]
	ifindex := sock.ifindex
	s.mu.RUnlock()
	if !s.limiter.Allow(p.Name, now) {
		s.counters.Refuse(dhcp.ReasonRateLimited)
		return false
	}
	if !known {
		s.counters.Refuse(dhcp.ReasonUnknownPort)
		return true
	}
	b, ok := datapath.DHCPBinding(n, p, s.gatewayMAC(n.Name))
	if !ok {
		reason := dhcp.ReasonUnknownPort
		if !n.DHCP {
			reason = dhcp.ReasonDHCPOff
		}
		s.counters.Refuse(reason)
		return true
	}
	reply, v := dhcp.Answer(frame, b)
	s.counters.Count(v)
	if s.declines.Warn(p.Name, v, now) {
		s.log.Warn("DHCP decline: the port's client says another host has its address", "port", p.Name, "address", p.IP)
	}
	if reply == nil {
		return true
	}
	if err := send(sock.f, ifindex, reply); err != nil {
		s.counters.Refuse(dhcp.ReasonSendFailed)
		s.log.Warn("DHCP answer not sent", "port", p.Name, "err", err)
	}
	return true
}

// send writes frame out of the link of index ifindex, into the port.
func send(f *os.File, ifindex int, frame []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if err := f.SetWriteDeadline(time.Now().Add(dhcpSendTimeout)); err != nil {
		return fmt.Errorf("send deadline: %w", err)
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex, Halen: 6}
	copy(to.Addr[:], frame[:6])
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), frame, 0, to)
		return serr != unix.EAGAIN
	}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("send: %w", serr)
	}
	return nil
}

// DHCPStats implements datapath.DHCPServer.
func (b *Backend) DHCPStats(ctx context.Context) (datapath.DHCPStats, error) {
	return b.dhcp.stats(ctx)
}

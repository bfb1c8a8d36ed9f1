package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LockDir holds the network namespaces' lock files (Lock): the systemd
// unit's RuntimeDirectory (deploy/systemd/ovs-vnet.service), made here
// when missing.
const LockDir = "/run/ovs-vnet"

// abstractName is the namespace's lock beside the file (claimAbstract): an
// abstract unix socket's name, which is the network namespace's, whatever
// the mount namespace.
const abstractName = "@ovs-vnet"

// holderWait bounds how long a daemon waits for the holder of the lock
// file, or of abstractName, to say who it is: each does right after it
// took its lock.
const holderWait = time.Second

// Identity is what a daemon tells another that finds the lock taken.
type Identity struct {
	PID      int    `json:"pid"`
	Host     string `json:"host"`
	Netns    string `json:"netns"` // as /proc/self/ns/net reads: net:[INODE]
	Backend  string `json:"backend"`
	Bridge   string `json:"bridge"`
	StateDir string `json:"state_dir,omitempty"`
	Etcd     string `json:"etcd,omitempty"`
}

// Self is this process's identity, but for its flags.
func Self() Identity {
	host, _ := os.Hostname()
	netns, _ := os.Readlink("/proc/self/ns/net")
	return Identity{PID: os.Getpid(), Host: host, Netns: netns}
}

func (id Identity) String() string {
	s := fmt.Sprintf("pid %d on %s in %s, --backend %s, --bridge %s", id.PID, id.Host, id.Netns, id.Backend, id.Bridge)
	if id.Etcd != "" {
		return s + ", etcd " + id.Etcd
	}
	return s + ", --state-dir " + id.StateDir
}

// ErrLocked means another daemon runs in this network namespace.
var ErrLocked = errors.New("another ovs-vnet daemon runs in this network namespace")

// Lock makes this process the daemon of the network namespace its thread
// is in, until release is called or the process ends; another daemon there
// makes it fail with ErrLocked, naming that daemon.
//
// One daemon per namespace, not per bridge: both backends keep
// namespace-wide state — the nftables tables `inet ovs_vnet` and `bridge
// ovs_vnet`, and links found by their ovs-vnet: alias, which each daemon's
// Prune deletes when its state does not name them (datapath/link.Prune) —
// so a second daemon in the namespace, on any bridge, would delete the
// first one's ports.
//
// The lock is flock(2) on dir/netns-DEV-INODE.lock, named after the
// namespace's identity: daemons in other namespaces share /run (ip netns
// exec keeps it) but not the file. The kernel drops the lock with the
// process, however it ends (SIGKILL too), so a stale lock cannot outlive
// its daemon. dir must be this user's (root's) and writable by nobody
// else: no other user can then take the lock, keep the daemon from
// starting, or write a holder's identity. The holder writes its identity,
// as JSON, into the file (mode 0600) for the next daemon to name it.
//
// The file is the mount namespace's, though: a daemon in a container with
// the host's network but a /run/ovs-vnet of its own would not see it. So
// the holder also binds the abstract unix socket @ovs-vnet, a name of the
// network namespace, for its lifetime. A daemon finding it bound by root
// (or this user) is refused, naming the holder by its SO_PEERCRED; bound
// by another user, it is a squatter, which is only logged on log: the
// file decides, and no other user can keep the daemon from starting.
func Lock(dir string, id Identity, log *slog.Logger) (release func(), err error) {
	if err := checkLockDir(dir); err != nil {
		return nil, err
	}
	// thread-self: a test switches one thread into another namespace.
	var ns syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &ns); err != nil {
		return nil, fmt.Errorf("namespace lock: identify the network namespace: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("netns-%d-%d.lock", ns.Dev, ns.Ino))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("namespace lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s): one daemon per namespace, on any bridge, since the nftables tables and tagged links are the namespace's; stop it, or run this one in another network namespace", ErrLocked, holder(f))
		}
		return nil, fmt.Errorf("namespace lock %s: %w", path, err)
	}
	line, err := json.Marshal(id)
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt(append(line, '\n'), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("namespace lock %s: write who holds it: %w", path, err)
	}
	unlock := func() {
		// Emptied first: the file names a holder only while it holds.
		_ = f.Truncate(0)
		f.Close()
	}
	// After the file's identity is written: a daemon refused by the file
	// waits only for that.
	unbind, err := claimAbstract(dir, log)
	if err != nil {
		unlock()
		return nil, err
	}
	return func() {
		unbind()
		unlock()
	}, nil
}

// claimAbstract binds abstractName in the calling thread's network
// namespace and keeps it until release is called. A holder that runs as
// root or as this user is a daemon whose lock file is not in dir: it is
// refused with ErrLocked. Any other holder, or one that does not answer,
// is logged and let be.
func claimAbstract(dir string, log *slog.Logger) (release func(), err error) {
	deadline := time.Now().Add(holderWait)
	for {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: abstractName, Net: "unix"})
		if err == nil {
			return holdAbstract(ln), nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("namespace lock %s: %w", abstractName, err)
		}
		cred, err := abstractHolder(deadline)
		switch {
		case err == nil && (cred.Uid == 0 || int(cred.Uid) == os.Geteuid()):
			return nil, fmt.Errorf("%w (pid %d, uid %d): it holds this network namespace through the abstract socket %s but not through %s, so it runs in another mount namespace — such as a container without the host's %s mounted; stop it, or give both the same %s", ErrLocked, cred.Pid, cred.Uid, abstractName, dir, dir, dir)
		case err == nil:
			log.Warn("namespace lock: another user's process holds "+abstractName+"; no daemon, so let be: the lock file decides", "pid", cred.Pid, "uid", cred.Uid)
			return func() {}, nil
		case time.Now().After(deadline):
			// Bound but not listening, or its backlog full: not a
			// daemon, which listens as it binds and accepts all.
			log.Warn("namespace lock: "+abstractName+" is bound, by whom cannot be told; let be: the lock file decides", "err", err)
			return func() {}, nil
		}
		// Refused: its holder has just gone, or not yet listens.
		time.Sleep(50 * time.Millisecond)
	}
}

// holdAbstract accepts on ln, closing each connection at once, so that
// its backlog never fills and another daemon's abstractHolder is always
// answered, until release closes it.
func holdAbstract(ln *net.UnixListener) (release func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				// Out of descriptors, say: the backlog holds
				// the connection meanwhile.
				time.Sleep(50 * time.Millisecond)
				continue
			}
			c.Close()
		}
	}()
	return func() {
		ln.Close()
		<-done
	}
}

// abstractHolder connects to abstractName and tells who bound it: for
// the connecting side, SO_PEERCRED is the listener's credentials as they
// were when it listened.
func abstractHolder(deadline time.Time) (*unix.Ucred, error) {
	c, err := (&net.Dialer{Deadline: deadline}).Dial("unix", abstractName)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	if cerr := raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); cerr != nil {
		return nil, cerr
	}
	return cred, err
}

// checkLockDir makes dir if it is missing, and refuses one that another
// user could write in.
func checkLockDir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("namespace lock: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("namespace lock: %w", err)
	}
	owner := -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner = int(st.Uid)
	}
	if !fi.IsDir() || owner != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("namespace lock: %s (%s, owner uid %d) must be a directory of uid %d that no one else may write: another user could take the lock", dir, fi.Mode(), owner, os.Geteuid())
	}
	return nil
}

// holder describes the daemon holding the lock of f, as the file says, or
// as much as can be said without it.
func holder(f *os.File) string {
	var err error
	for deadline := time.Now().Add(holderWait); ; time.Sleep(50 * time.Millisecond) {
		var id Identity
		buf := make([]byte, 4096)
		var n int
		n, err = f.ReadAt(buf, 0)
		if n > 0 {
			err = json.Unmarshal(buf[:n], &id)
			if err == nil && (id.PID <= 0 || syscall.Kill(id.PID, 0) == syscall.ESRCH) {
				// A killed daemon's, which the holder has yet to
				// overwrite.
				err = fmt.Errorf("the lock file names pid %d, which is gone", id.PID)
			}
			if err == nil {
				return id.String()
			}
		} else if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("the lock file is empty")
		}
		if time.Now().After(deadline) {
			return "it does not say who it is: " + err.Error()
		}
	}
}

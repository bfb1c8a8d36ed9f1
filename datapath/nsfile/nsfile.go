// Package nsfile opens the file that names a port's network namespace — a
// name under /var/run/netns, /proc/PID/ns/net, a bind mount — as the one
// place that does, for the controller's checks and for both backends. The
// path comes from an API client, so it may name anything: a FIFO whose open
// never returns, a device whose open has effects (a watchdog), a directory,
// the daemon's own namespace. Open touches none of those: it looks at the
// file through an O_PATH descriptor, which opens nothing, and opens it for
// real only once it is known to be a network namespace.
package nsfile

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
)

// openTimeout bounds an open whose path lookup hangs (a stuck FUSE or NFS
// mount on the way): opening a namespace takes microseconds.
const openTimeout = 5 * time.Second

// Paths of the namespaces no port may use: the daemon's own (thread-self,
// because a thread locked into another namespace is never the caller's: see
// internal/nsenter) and PID 1's, the host's in production.
const (
	ownNetns  = "/proc/thread-self/ns/net"
	pid1Netns = "/proc/1/ns/net"
)

// Open returns a handle on the network namespace at path, for
// netlink.NewHandleAt and setns; the caller closes it. It fails with
// datapath.ErrNoNetns when nothing is at path, and with v1.ErrInvalid
// when what is there is not a network namespace, or is the daemon's own or
// PID 1's. It returns within ctx's deadline, and openTimeout, whatever
// path names; an open still under way then closes what it gets.
func Open(ctx context.Context, path string) (netns.NsHandle, error) {
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	type opened struct {
		ns  netns.NsHandle
		err error
	}
	done := make(chan opened, 1)
	go func() {
		ns, err := open(path)
		done <- opened{ns, err}
	}()
	select {
	case o := <-done:
		return o.ns, o.err
	case <-ctx.Done():
		go func() {
			if o := <-done; o.err == nil {
				o.ns.Close()
			}
		}()
		return netns.None(), fmt.Errorf("open netns %s: %w", path, ctx.Err())
	}
}

// Identify returns the identity of the namespace at path, on Open's terms.
func Identify(ctx context.Context, path string) (ID, error) {
	ns, err := Open(ctx, path)
	if err != nil {
		return ID{}, err
	}
	defer ns.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		return ID{}, fmt.Errorf("stat netns %s: %w", path, err)
	}
	return ID{st.Dev, st.Ino}, nil
}

// Check tells whether a port may use the namespace at path, as Open does.
func Check(ctx context.Context, path string) error {
	ns, err := Open(ctx, path)
	if err == nil {
		ns.Close()
	}
	return err
}

func open(path string) (netns.NsHandle, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return netns.None(), fmt.Errorf("netns %s: %w", path, datapath.ErrNoNetns)
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		// It exists, but not for us: say so rather than "does not exist".
		return netns.None(), fmt.Errorf("%w: netns %s cannot be opened by the daemon: %v (a /proc/PID/ns/net of another user needs CAP_SYS_PTRACE)", v1.ErrInvalid, path, err)
	case err != nil:
		return netns.None(), fmt.Errorf("%w: netns %s: %v", v1.ErrInvalid, path, err)
	}
	defer unix.Close(fd)
	id, err := identify(fd, path)
	if err != nil {
		return netns.None(), err
	}
	if err := notDaemons(id, path); err != nil {
		return netns.None(), err
	}
	// Only now is it opened: a namespace file, whose open has no effect.
	// Through the descriptor, not the path, which may name something
	// else by now.
	nsfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return netns.None(), fmt.Errorf("open netns %s: %w", path, err)
	}
	t, err := unix.IoctlRetInt(nsfd, unix.NS_GET_NSTYPE)
	if err != nil || t != unix.CLONE_NEWNET {
		unix.Close(nsfd)
		return netns.None(), fmt.Errorf("%w: netns %s is a namespace, but not a network namespace", v1.ErrInvalid, path)
	}
	return netns.NsHandle(nsfd), nil
}

// ID is what tells two namespaces apart: the device and inode of their
// nsfs file.
type ID struct{ dev, ino uint64 }

// identify checks that the file behind the O_PATH descriptor fd is a
// namespace (a regular file of nsfs) and returns its identity.
func identify(fd int, path string) (ID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ID{}, fmt.Errorf("stat netns %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ID{}, fmt.Errorf("%w: netns %s is a %s, not a network namespace", v1.ErrInvalid, path, kind(st.Mode))
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return ID{}, fmt.Errorf("statfs netns %s: %w", path, err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return ID{}, fmt.Errorf("%w: netns %s is a regular file, not a network namespace (ip netns add makes one)", v1.ErrInvalid, path)
	}
	return ID{st.Dev, st.Ino}, nil
}

// notDaemons refuses the daemon's own namespace and PID 1's: a port there
// would address, route and take over the host's own stack. Not knowing
// which namespace those are refuses too, but for PID 1's when the daemon
// may not look at PID 1 (no CAP_SYS_PTRACE over it, as in some containers):
// refusing there would refuse every port, so PID 1's namespace then goes
// unrecognised under another path (docs/API.md says so).
func notDaemons(id ID, path string) error {
	for _, own := range []struct{ path, what string }{{ownNetns, "the daemon's own"}, {pid1Netns, "PID 1's (the host's)"}} {
		var st unix.Stat_t
		err := unix.Stat(own.path, &st)
		if own.path == pid1Netns && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
			continue
		}
		if err != nil {
			return fmt.Errorf("netns %s: cannot tell whether it is %s network namespace: %w", path, own.what, err)
		}
		if (ID{st.Dev, st.Ino}) == id {
			return fmt.Errorf("%w: netns %s is %s network namespace: a port must be in a namespace of its own", v1.ErrInvalid, path, own.what)
		}
	}
	return nil
}

// kind names a file type for an error message.
func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	default:
		return "special file"
	}
}

package link

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ifreqData is struct ifreq with its union used as a pointer, as SIOCETHTOOL wants it.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // the rest of the 24-byte union
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// disableTxChecksum turns TX checksum offload off on ifname inside ns, so the
// kernel fills in checksums before a packet leaves: OVS's userspace datapath
// without userspace TSO forwards partial checksums as they are, and TCP stalls
// (docs/DESIGN.md §6). It is what `ethtool -K IF tx off` does; the kernel drops the
// offloads that depend on it (TSO, GSO partial) by itself.
func disableTxChecksum(ns netns.NsHandle, ifname string) error {
	fd, err := socketIn(ns)
	if err != nil {
		return fmt.Errorf("tx checksum off on %s: %w", ifname, err)
	}
	defer unix.Close(fd)
	val := ethtoolValue{cmd: unix.ETHTOOL_STXCSUM, data: 0}
	var req ifreqData
	copy(req.name[:unix.IFNAMSIZ-1], ifname)
	req.data = unsafe.Pointer(&val)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("tx checksum off on %s: ioctl ETHTOOL_STXCSUM: %w", ifname, errno)
	}
	return nil
}

// socketIn opens a datagram socket inside ns. Only the socket() call runs in
// ns, on a locked thread that switches back at once; the socket stays bound to
// ns for its lifetime, so the ioctls on it need no switching.
func socketIn(ns netns.NsHandle) (int, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("enter netns: %w", err)
	}
	fd, sockErr := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err := netns.Set(orig); err != nil {
		// This thread is stuck in ns: keep it locked so the runtime retires it
		// with this goroutine instead of scheduling others on it.
		if sockErr == nil {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("leave netns: %w", err)
	}
	runtime.UnlockOSThread()
	if sockErr != nil {
		return -1, fmt.Errorf("socket: %w", sockErr)
	}
	return fd, nil
}

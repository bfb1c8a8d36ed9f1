package link

import (
	"fmt"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/internal/nsenter"
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
// ns; the socket stays bound to ns for its lifetime, so the ioctls on it need
// no switching.
func socketIn(ns netns.NsHandle) (int, error) {
	fd := -1
	err := nsenter.Run(ns, func() (err error) {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd) // made, but the thread could not leave ns
		}
		return -1, err
	}
	return fd, nil
}

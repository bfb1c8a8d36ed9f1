#!/usr/bin/env bash
# Builds a tiny VM for the tap port acceptance (e2e TestQemuTap, docs/VM.md):
# Debian's cloud kernel and a busybox initramfs whose /init brings eth0 up with
# an address and gateway given on the kernel command line, pings a target,
# prints a marker line on the serial console and powers off.
#
#   hack/vm-image.sh CACHE_DIR   → CACHE_DIR/vmlinuz, CACHE_DIR/initrd.img
#
# Kernel command line the /init reads (all but vnet.ping optional):
#   vnet.ip=10.1.0.5/24 vnet.gw=10.1.0.1 vnet.mtu=1500 vnet.ping=10.1.0.7
# It prints "VNET-PING-OK <target>" or "VNET-PING-FAIL <target>".
#
# Nothing is installed: the kernel's .deb is fetched with `apt-get download`
# and unpacked with `dpkg-deb -x` into CACHE_DIR (never the repository; a
# test's temp dir or $XDG_CACHE_HOME/ovs-vnet). A second run with the image
# in place does nothing. Needs apt-get, dpkg-deb, modinfo (kmod), readelf and
# busybox-static (hack/install-deps.sh).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 CACHE_DIR" >&2; exit 2; }
cache=$(mkdir -p "$1" && cd "$1" && pwd)
[ -s "$cache/vmlinuz" ] && [ -s "$cache/initrd.img" ] && exit 0

# The initramfs has no libraries: its busybox must be busybox-static's.
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || readelf -d "$busybox" | grep -q NEEDED; then
  echo "vm-image: a static busybox is needed (busybox-static; hack/install-deps.sh)" >&2
  exit 1
fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The meta-package only depends on the versioned image: resolve it.
meta=linux-image-cloud-amd64
pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { echo "vm-image: cannot resolve $meta to a versioned kernel package" >&2; exit 1; }
(cd "$work" && apt-get download -qq "$pkg" 2>/dev/null)
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/kernel"
kver=${pkg#linux-image-}
moddir="$work/kernel/lib/modules/$kver"

# virtio_net and what it needs (failover, net_failover, virtio, the PCI
# transport), deps first; a driver built into the kernel has no .ko and
# needs nothing.
root="$work/root"
mkdir -p "$root"/{bin,proc,sys,dev,lib/modules}
order=()
add() {
  local m=$1 ko dep
  for have in "${order[@]}"; do [ "$have" = "$m" ] && return; done
  ko=$(find "$moddir" -name "$m.ko" -print -quit)
  [ -n "$ko" ] || return 0
  for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do add "$dep"; done
  cp "$ko" "$root/lib/modules/"
  order+=("$m")
}
for m in virtio_pci virtio_net; do add "$m"; done
printf '%s\n' "${order[@]}" >"$root/lib/modules/order"

cp "$busybox" "$root/bin/busybox"
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko; done
ip= gw= mtu= target=
for arg in $(cat /proc/cmdline); do
  case $arg in
    vnet.ip=*) ip=${arg#vnet.ip=} ;;
    vnet.gw=*) gw=${arg#vnet.gw=} ;;
    vnet.mtu=*) mtu=${arg#vnet.mtu=} ;;
    vnet.ping=*) target=${arg#vnet.ping=} ;;
  esac
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -n "$mtu" ] && ip link set eth0 mtu "$mtu"
ip link set lo up
ip link set eth0 up
[ -n "$ip" ] && ip addr add "$ip" dev eth0
[ -n "$gw" ] && ip route add default via "$gw"
echo "VNET-UP $(cat /sys/class/net/eth0/address) $ip"
result=FAIL
i=0
while [ $i -lt 30 ]; do
  if ping -c 1 -W 2 "$target" >/dev/null 2>&1; then result=OK; break; fi
  i=$((i+1))
done
echo "VNET-PING-$result $target"
poweroff -f
EOF
chmod +x "$root/init"

(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.img"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
# Renamed into place last: an interrupted build leaves no half image.
mv "$work/initrd.img" "$cache/initrd.img"
mv "$work/vmlinuz" "$cache/vmlinuz"

#!/usr/bin/env bash
# Builds a tiny VM for the tap port acceptance (e2e TestQemuTap, TestQemuDHCP,
# docs/VM.md): Debian's cloud kernel and a busybox initramfs whose /init
# brings eth0 up with an address and gateway given on the kernel command
# line, or asks DHCP for them, pings a target, prints a marker line on the
# serial console and powers off.
#
#   hack/vm-image.sh [CACHE_DIR]   → prints IMAGE_DIR, which holds vmlinuz
#                                    and initrd.img
#
# CACHE_DIR defaults to ${XDG_CACHE_HOME:-/var/cache}/ovs-vnet/vm (never the
# repository). The image is kept there, in a directory per kernel version
# and guest recipe (IMAGE_DIR = CACHE_DIR/<version>-<12 hex of the sha256 of
# the guest's scripts>): a run with it in place only resolves the kernel
# package and prints it; a new kernel in the archive, or a changed /init, is
# built anew. The directories are open to all (qemu runs as the tap's owner).
# What it did, and how long that took, goes to stderr: a build takes well
# under a minute.
#
# Kernel command line the /init reads (all but vnet.ping optional):
#   vnet.ip=10.1.0.5/24 vnet.gw=10.1.0.1 vnet.mtu=1500 vnet.ping=10.1.0.7
# or, instead of vnet.ip/gw/mtu, vnet.dhcp=1: busybox udhcpc asks for the
# address, router and MTU (docs/DHCP.md) and the /init prints
#   "VNET-DHCP-OK ip=10.1.0.5/24 router=10.1.0.1 mtu=1500 dns=… domain=… lease=…"
# or "VNET-DHCP-FAIL". It prints "VNET-PING-OK <target>" or
# "VNET-PING-FAIL <target>".
#
# Nothing is installed: the kernel's .deb is fetched with `apt-get download`
# and unpacked with `dpkg-deb -x`. Stale package lists (the package cannot be
# resolved or downloaded) get one `apt-get update` and a retry. Needs
# apt-get, dpkg-deb, modinfo (kmod), readelf and busybox-static
# (hack/install-deps.sh).
set -euo pipefail

[ $# -le 1 ] || { echo "usage: $0 [CACHE_DIR]" >&2; exit 2; }
cache=${1:-${XDG_CACHE_HOME:-/var/cache}/ovs-vnet/vm}
mkdir -p -m 0755 "$cache"
cache=$(cd "$cache" && pwd)

# The initramfs has no libraries: its busybox must be busybox-static's.
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || readelf -d "$busybox" | grep -q NEEDED; then
  echo "vm-image: a static busybox is needed (busybox-static; hack/install-deps.sh)" >&2
  exit 1
fi

# The meta-package only depends on the versioned image: resolve it.
meta=linux-image-cloud-amd64
resolve() { apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
updated=
update() {
  [ -z "$updated" ] || return 1
  echo "vm-image: $1; updating the package lists once" >&2
  apt-get update -qq
  updated=1
}
pkg=$(resolve)
if [ -z "$pkg" ] && update "cannot resolve $meta"; then pkg=$(resolve); fi
[ -n "$pkg" ] || { echo "vm-image: cannot resolve $meta to a versioned kernel package" >&2; exit 1; }
kver=${pkg#linux-image-}

# The guest's scripts, here first: their hash names the image.
init=$(cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko; done
ip= gw= mtu= target= dhcp=
for arg in $(cat /proc/cmdline); do
  case $arg in
    vnet.ip=*) ip=${arg#vnet.ip=} ;;
    vnet.gw=*) gw=${arg#vnet.gw=} ;;
    vnet.mtu=*) mtu=${arg#vnet.mtu=} ;;
    vnet.dhcp=1) dhcp=1 ;;
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
if [ -n "$dhcp" ]; then
  # 5 tries 2 s apart: time for the link to come up on both sides.
  udhcpc -i eth0 -q -n -t 5 -T 2 -s /udhcpc.script || echo "VNET-DHCP-FAIL"
  ip=$(ip -4 -o addr show dev eth0 | awk '{print $4}')
fi
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
)
# udhcpc's script: applies what it was given and says so on the console.
dhcp_script=$(cat <<'EOF'
#!/bin/busybox sh
case $1 in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew)
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    echo "VNET-DHCP-OK ip=$ip/$mask router=$router mtu=$mtu dns=$(echo $dns | tr ' ' ,) domain=$domain lease=$lease"
    ;;
esac
exit 0
EOF
)
recipe=$(printf '%s\n%s\n' "$init" "$dhcp_script" | sha256sum | cut -c1-12)
image="$cache/$kver-$recipe"
if [ -s "$image/vmlinuz" ] && [ -s "$image/initrd.img" ]; then
  echo "vm-image: $image is in place" >&2
  echo "$image"
  exit 0
fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# As root, into a directory the _apt sandbox user cannot write: apt would
# fall back to root with a warning; say so instead.
download() { (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$pkg"); }
if ! download; then
  update "apt-get download $pkg failed" || exit 1
  download
fi
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/kernel"
moddir="$work/kernel/lib/modules/$kver"

# virtio_net and what it needs (failover, net_failover, virtio, the PCI
# transport), deps first, and af_packet, whose packet sockets udhcpc sends
# and reads with; a driver built into the kernel has no .ko and needs
# nothing.
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
for m in virtio_pci virtio_net af_packet; do add "$m"; done
printf '%s\n' "${order[@]}" >"$root/lib/modules/order"

cp "$busybox" "$root/bin/busybox"
printf '%s\n' "$init" >"$root/init"
printf '%s\n' "$dhcp_script" >"$root/udhcpc.script"
chmod +x "$root/init" "$root/udhcpc.script"

(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.img"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
# Renamed into place last, whole: an interrupted build leaves no half image.
mkdir "$work/image"
mv "$work/initrd.img" "$work/vmlinuz" "$work/image/"
chmod -R a+rX "$work/image"
rm -rf "$image"
mv "$work/image" "$image"
echo "vm-image: built $image in ${SECONDS}s" >&2
echo "$image"

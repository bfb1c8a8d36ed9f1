#!/usr/bin/env bash
# Installs, with apt, whatever the daemon and its tests need and the machine lacks.
# Under CI=true any failure is fatal (a missing prerequisite must fail the run,
# never skip a test); elsewhere too, since nothing works without these.
set -euo pipefail

# command → Debian package
declare -A need=(
  [ovs-vswitchd]=openvswitch-switch
  [ovsdb-server]=openvswitch-switch
  [ovs-vsctl]=openvswitch-common
  [ip]=iproute2
  [nft]=nftables
  [ping]=iputils-ping
  [ethtool]=ethtool
  [iperf3]=iperf3
  [curl]=curl
  [jq]=jq
  [promtool]=prometheus
  [dot]=graphviz
  [npx]=npm
  [readelf]=binutils
  [systemd-analyze]=systemd
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [python3]=python3
  [/usr/lib/cni/portmap]=containernetworking-plugins # chained by docs/CNI.md's example (e2e/cni_docs_test.go)
  [containerd]=containerd # e2e/containerd_test.go; with ctr, and runc as a dependency
  [busybox]=busybox-static # static: e2e/containerd_test.go's pause image, hack/vm-image.sh's initramfs
  [qemu-system-x86_64]=qemu-system-x86 # docs/VM.md's recipe (e2e/qemu_test.go)
  [modinfo]=kmod # hack/vm-image.sh: the VM's modules and what they need
  [setpriv]=util-linux # e2e/qemu_test.go runs the VM as nobody
  [podman]=podman # 4.3, with its CNI backend (e2e/podman_test.go); no Recommends, so no netavark
  [runc]=runc # podman's runtime there: its Depends would pick crun
)

missing=()
for cmd in "${!need[@]}"; do
  # ovs-vswitchd and ovsdb-server live in /usr/sbin, which a non-login PATH may lack.
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${need[$cmd]}")
done
# Debian's other busybox package is dynamically linked: useless in an image.
if command -v busybox >/dev/null 2>&1 && ldd "$(command -v busybox)" >/dev/null 2>&1; then
  missing+=(busybox-static)
fi
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "install-deps: Go is missing (expected at /usr/local/go); install Go 1.26" >&2
  exit 1
fi
"$(dirname "$0")/install-crictl.sh" # not packaged: built with Go
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "install-deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the package from starting the system OVS service: the project
# runs its own sandboxed OVS and must not touch the host's.
policy=/usr/sbin/policy-rc.d
created_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ -n "$created_policy" ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null

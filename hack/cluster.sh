#!/usr/bin/env bash
# cluster.sh: a local multi-host ovs-vnet demo living entirely inside network
# namespaces this script creates (docs/DESIGN.md §6, issue 9):
#
#   underlay namespace   <prefix>-u : Linux bridge br0 (10.99.0.0/24), a 3-member
#                                     etcd cluster on 10.99.0.251-253
#   host namespaces      <prefix>-hK: veth ul0 into br0, 10.99.0.K; per host a
#                                     sandboxed OVS (hack/ovs-sandbox.sh --netns)
#                                     with the userspace tunnel bridge br-phy
#                                     (--backend ovs), and one ovs-vnet daemon
#
# <prefix> is vnc-<random id>, saved in DIR, so clusters in different DIRs run side
# by side. Nothing lands in the root namespace but the namespaces' names (and the
# processes, which live inside them). The 10.99.0.0/24 underlay exists only inside
# the namespaces, so two clusters can both use it.
#
#   hack/cluster.sh up N DIR [--backend ovs|linux] [--bin PATH] [--tunnel vxlan|geneve]
#                            [--lease DURATION] [-- EXTRA-DAEMON-FLAGS...]
#   hack/cluster.sh down DIR      (exit 0 also on a DIR that holds no cluster: nothing to do)
#   hack/cluster.sh status DIR
#   hack/cluster.sh stop-host DIR NAME [--signal KILL|TERM]
#   hack/cluster.sh start-host DIR NAME
#   hack/cluster.sh stop-etcd DIR I
#   hack/cluster.sh start-etcd DIR I
#
# `up` (and `status`) print one line per host on stdout, the only lines machines
# should parse:
#   host NAME netns NS api http://127.0.0.1:9476
# plus human notes starting with '#'. Everything else goes to stderr.
#
# Files under DIR:
#   cluster.env            id, namespaces, backend, N, binary, flags (sourced by the subcommands)
#   namespaces             the namespaces `up` created, one a line (what `down` deletes)
#   ovs-vnet               the daemon binary, when `up` built it (no --bin)
#   etcd/eI/               member I's --data-dir (removed by `down`)
#   etcd/eI.{args,pid,log} its command line (one argument a line), pid, log
#   hK/args                host K's daemon command line, one argument a line
#   hK/daemon.{pid,log}    the daemon's pid and log (stdout+stderr; start-host appends,
#                          up keeps the previous cluster's as daemon.log.prev)
#   hK/state/              the daemon's --state-dir
#   hK/ovs/                the host's OVS sandbox (--backend ovs; see ovs-sandbox.sh)
#   .lock                  serialises the subcommands on one DIR
#
# `down` stops the daemons (TERM, KILL after CLUSTER_STOP_TIMEOUT), the sandboxes,
# etcd, and deletes the namespaces DIR/namespaces lists that are this cluster's
# (<prefix>-u, <prefix>-hK; any other name there is left alone, with a warning); it
# keeps logs and args for inspection. On a DIR without cluster.env it says "not a
# cluster directory", creates nothing (no .lock either) and exits 0. An `up`
# interrupted by INT or TERM lets its background setup jobs end (stopping them
# after CLUSTER_STOP_TIMEOUT), then tears down what it made. Waits can be raised
# on a slow machine: CLUSTER_READY_TIMEOUT (daemon /readyz, 60 s),
# CLUSTER_ETCD_TIMEOUT (30 s), CLUSTER_STOP_TIMEOUT (20 s).
#
# The functions behind the subcommands live in hack/cluster-lib.sh.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly REPO=${SCRIPT_DIR%/*}
readonly SANDBOX=$SCRIPT_DIR/ovs-sandbox.sh
# ovs-vswitchd, ovsdb-server (and ip, on some systems) live in sbin, which a
# non-login PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin

# shellcheck source=cluster-lib.sh
source "$SCRIPT_DIR/cluster-lib.sh"

DIR=
UP_DONE=1

usage() {
	cat >&2 <<'EOF'
usage: cluster.sh up N DIR [--backend ovs|linux] [--bin PATH] [--tunnel vxlan|geneve]
                           [--lease DURATION] [-- EXTRA-DAEMON-FLAGS...]
       cluster.sh down DIR                   # exit 0 also when DIR holds no cluster
       cluster.sh status DIR                 # the host lines again, and what runs
       cluster.sh stop-host DIR NAME [--signal KILL|TERM]   # default KILL
       cluster.sh start-host DIR NAME        # same flags as before
       cluster.sh stop-etcd DIR I            # SIGKILL etcd member I (1-3)
       cluster.sh start-etcd DIR I
EOF
	exit 2
}

# For the subcommands on an existing cluster: DIR, its lock, its cluster.env.
open_dir() {
	set_dir "$1"
	[[ -f $DIR/cluster.env ]] || die "$DIR has no cluster.env (not a cluster directory)"
	take_lock
	load_env
}

# --- subcommands ---------------------------------------------------------------

on_up_exit() {
	local rc=$?
	((UP_DONE)) && return 0
	# The teardown is bounded by its own timeouts; a second Ctrl-C must not
	# cut it short and leave half a cluster.
	trap '' INT TERM
	((rc != 0)) || rc=1
	if ((rc == 130 || rc == 143)); then log "interrupted; tearing down what was made"; else log "up failed; tearing down what was made"; fi
	reap_setup_jobs
	teardown || true
	exit "$rc"
}

cmd_up() {
	[[ $# -ge 2 ]] || usage
	local n=$1
	if ! [[ $n =~ ^[1-9][0-9]*$ ]] || ((n > 250)); then die "N must be 1..250, not $n"; fi
	set_dir "$2"
	shift 2
	BACKEND=ovs BIN='' TUNNEL=vxlan LEASE=10s EXTRA=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		--backend | --bin | --tunnel | --lease)
			[[ $# -ge 2 && -n $2 ]] || usage
			case $1 in
			--backend) BACKEND=$2 ;;
			--bin) BIN=$2 ;;
			--tunnel) TUNNEL=$2 ;;
			--lease) LEASE=$2 ;;
			esac
			shift 2
			;;
		--) shift; EXTRA=("$@"); break ;;
		*) usage ;;
		esac
	done
	[[ $BACKEND == ovs || $BACKEND == linux ]] || die "--backend must be ovs or linux"
	[[ $TUNNEL == vxlan || $TUNNEL == geneve ]] || die "--tunnel must be vxlan or geneve"
	[[ $LEASE =~ ^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$ ]] || die "--lease must be a Go duration (e.g. 10s), not $LEASE"
	local a
	for a in "${EXTRA[@]}"; do [[ $a != *$'\n'* ]] || die "daemon flags must not contain newlines"; done

	if [[ -n $BIN ]]; then
		[[ -f $BIN && -x $BIN ]] || die "--bin $BIN is not an executable file"
		BIN=$(realpath -e -- "$BIN")
		[[ $BIN != *$'\n'* ]] || die "--bin must not contain a newline"
	fi
	local cmd
	for cmd in ip ss setsid flock curl etcdctl ethtool; do
		command -v "$cmd" >/dev/null || die "$cmd is missing (hack/install-deps.sh)"
	done
	ETCD_BIN=$(command -v etcd) || die "etcd is missing: apt-get install etcd-server (hack/install-deps.sh)"
	if [[ $BACKEND == ovs ]]; then
		for cmd in ovs-vsctl ovsdb-server ovs-vswitchd; do
			command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] || die "$cmd is missing (hack/install-deps.sh)"
		done
	fi

	mkdir -p "$DIR"
	take_lock
	if [[ -f $DIR/cluster.env ]]; then
		(
			load_env
			ns_exists "$(underlay_ns)"
		) && die "$DIR is up already; run down first"
		# Leftovers of a crashed or half-made cluster; in a subshell, as it
		# loads that cluster's settings.
		(teardown)
	fi

	BUILT=0
	if [[ -z $BIN ]]; then
		local go=go
		command -v go >/dev/null || go=/usr/local/go/bin/go
		log "building $DIR/ovs-vnet"
		(cd "$REPO" && "$go" build -o "$DIR/ovs-vnet" ./cmd/ovs-vnet) 8>&- || die "go build failed"
		BIN=$DIR/ovs-vnet
		BUILT=1
	fi

	local id
	id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
	NS_PREFIX=vnc-$id
	N=$n
	# Written before anything exists, so that `down` (and our failure path) finds it.
	{
		printf 'NS_PREFIX=%q\n' "$NS_PREFIX"
		printf 'N=%q\n' "$N"
		printf 'BACKEND=%q\n' "$BACKEND"
		printf 'BIN=%q\n' "$BIN"
		printf 'BUILT=%q\n' "$BUILT"
		printf 'TUNNEL=%q\n' "$TUNNEL"
		printf 'LEASE=%q\n' "$LEASE"
		printf 'ETCD_BIN=%q\n' "$ETCD_BIN"
		if ((${#EXTRA[@]})); then
			printf 'EXTRA=(%s)\n' "$(printf '%q ' "${EXTRA[@]}")"
		else
			echo 'EXTRA=()'
		fi
	} >"$DIR/cluster.env"
	rm -f "$DIR/namespaces"
	UP_DONE=0
	trap on_up_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	local t0=$SECONDS k i f
	log "cluster $NS_PREFIX: $N hosts, backend $BACKEND, tunnel $TUNNEL, in $DIR"
	# Logs of a previous cluster in this DIR stay one round, as *.log.prev, so
	# that a failure report shows this run only.
	for f in "$DIR"/h*/daemon.log "$DIR"/etcd/e*.log; do
		if [[ -f $f ]]; then mv -f "$f" "$f.prev"; fi
	done
	setup_underlay
	mkdir -p "$DIR/etcd"
	for i in 1 2 3; do
		rm -rf "$DIR/etcd/e$i"
		write_etcd_args "$i"
		start_etcd_member "$i"
	done
	for ((k = 1; k <= N; k++)); do
		mkdir -p "$DIR/h$k"
		rm -rf "$DIR/h$k/state"
		setup_host_ns "$k"
	done
	if [[ $BACKEND == ovs ]]; then
		local j failed=0
		for ((k = 1; k <= N; k++)); do
			setup_host_ovs "$k" &
			SETUP_JOBS+=("$!")
		done
		for j in "${SETUP_JOBS[@]}"; do wait "$j" || failed=1; done
		SETUP_JOBS=()
		((!failed)) || die "could not set up OVS on every host"
	fi
	log "waiting for etcd"
	wait_etcd_healthy "$(etcd_endpoints)"
	for ((k = 1; k <= N; k++)); do
		write_daemon_args "$k"
		start_daemon "$k"
	done
	local hosts=()
	for ((k = 1; k <= N; k++)); do hosts+=("$k"); done
	log "waiting for the daemons' /readyz"
	wait_ready "${hosts[@]}"

	UP_DONE=1
	trap - EXIT INT TERM
	log "up in $((SECONDS - t0))s"
	print_hosts
}

print_hosts() {
	local k
	for ((k = 1; k <= N; k++)); do host_line "$k"; done
	echo "# cluster $NS_PREFIX ($BACKEND, $TUNNEL, lease $LEASE); underlay namespace $(underlay_ns), $UNDERLAY_PREFIX.0/$UNDERLAY_LEN, hosts .1-.$N"
	echo "# etcd endpoints (reachable from the host namespaces): $(etcd_endpoints)"
	echo "# use:  ip netns exec $(host_ns 1) curl -s http://$API_ADDR/v1/info"
	echo "#       ETCDCTL_API=3 ip netns exec $(underlay_ns) etcdctl --endpoints=$(etcd_endpoints) get --prefix $ETCD_PREFIX --keys-only"
	echo "# logs: $DIR/hK/daemon.log, $DIR/etcd/eI.log"
	echo "# stop: $SCRIPT_DIR/cluster.sh down $DIR"
}

# A DIR that holds no cluster is no error (`down` is idempotent), and gets
# no .lock: one is taken only where `up` made one.
cmd_down() {
	[[ $# -eq 1 ]] || usage
	set_dir "$1"
	if [[ -f $DIR/cluster.env || -f $DIR/.lock ]]; then
		take_lock
		# Checked again under the lock: an `up` may have been writing it.
		if [[ -f $DIR/cluster.env ]]; then
			teardown
			return 0
		fi
	fi
	log "$DIR is not a cluster directory (no cluster.env): nothing to take down"
}

cmd_status() {
	[[ $# -eq 1 ]] || usage
	open_dir "$1"
	ns_exists "$(underlay_ns)" || die "cluster in $DIR is down"
	print_hosts
	local k i pid state
	for ((k = 1; k <= N; k++)); do
		if pid=$(our_pid "$DIR/h$k/daemon.pid" "$(daemon_mark "$k")"); then
			state="daemon pid $pid, $(readyz "$k" && echo ready || echo 'not ready')"
		else
			state="daemon not running"
		fi
		echo "# h$k: $state"
	done
	for i in 1 2 3; do
		if pid=$(our_pid "$DIR/etcd/e$i.pid" "$(etcd_mark "$i")"); then
			echo "# etcd e$i $(etcd_ip "$i"): pid $pid"
		else
			echo "# etcd e$i $(etcd_ip "$i"): not running"
		fi
	done
}

cmd_stop_host() {
	[[ $# -eq 2 || $# -eq 4 ]] || usage
	local name=$2 sig=KILL
	if [[ $# -eq 4 ]]; then
		[[ $3 == --signal ]] || usage
		sig=${4#SIG}
	fi
	[[ $sig == KILL || $sig == TERM ]] || die "--signal must be KILL or TERM"
	open_dir "$1"
	local k
	k=$(host_num "$name")
	if ! our_pid "$DIR/h$k/daemon.pid" "$(daemon_mark "$k")" >/dev/null; then
		log "daemon of $name is not running"
		return 0
	fi
	stop_group "$sig" "daemon of $name" "$DIR/h$k/daemon.pid" "$(daemon_mark "$k")"
}

cmd_start_host() {
	[[ $# -eq 2 ]] || usage
	open_dir "$1"
	ns_exists "$(underlay_ns)" || die "cluster in $DIR is down"
	local k pid
	k=$(host_num "$2")
	if pid=$(our_pid "$DIR/h$k/daemon.pid" "$(daemon_mark "$k")"); then
		log "daemon of $2 runs already (pid $pid)"
	else
		start_daemon "$k"
		wait_ready "$k"
	fi
	host_line "$k"
}

cmd_stop_etcd() {
	[[ $# -eq 2 ]] || usage
	open_dir "$1"
	local i
	i=$(etcd_num "$2")
	if ! our_pid "$DIR/etcd/e$i.pid" "$(etcd_mark "$i")" >/dev/null; then
		log "etcd member e$i is not running"
		return 0
	fi
	stop_group KILL "etcd member e$i" "$DIR/etcd/e$i.pid" "$(etcd_mark "$i")"
}

cmd_start_etcd() {
	[[ $# -eq 2 ]] || usage
	open_dir "$1"
	ns_exists "$(underlay_ns)" || die "cluster in $DIR is down"
	local i pid
	i=$(etcd_num "$2")
	if pid=$(our_pid "$DIR/etcd/e$i.pid" "$(etcd_mark "$i")"); then
		log "etcd member e$i runs already (pid $pid)"
		return 0
	fi
	start_etcd_member "$i"
	# `endpoint health` needs a quorum, and the other members may be down on
	# purpose (an outage test): then wait only until this one answers.
	local j up=0
	for j in 1 2 3; do
		our_pid "$DIR/etcd/e$j.pid" "$(etcd_mark "$j")" >/dev/null && up=$((up + 1))
	done
	if ((up >= 2)); then
		wait_etcd_healthy "http://$(etcd_ip "$i"):2379"
	else
		log "only $up of 3 members run (no quorum): waiting for e$i to listen, not for health"
		wait_etcd_listening "$i"
	fi
}

# Descriptors our caller left open (a shell's pipes, say) would otherwise stay
# open in every daemon we start, for as long as it runs: keep only 0, 1 and 2
# (and bash's own 255, the script).
close_inherited_fds() {
	local f fd
	for f in "/proc/$$/fd"/*; do
		fd=${f##*/}
		[[ $fd =~ ^[0-9]+$ ]] || continue
		if ((fd > 2 && fd != 255)); then exec {fd}>&-; fi
	done
}

main() {
	[[ $# -ge 2 ]] || usage
	((EUID == 0)) || die "must run as root (namespaces, links, OVS)"
	close_inherited_fds
	local cmd=$1
	shift
	case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status "$@" ;;
	stop-host) cmd_stop_host "$@" ;;
	start-host) cmd_start_host "$@" ;;
	stop-etcd) cmd_stop_etcd "$@" ;;
	start-etcd) cmd_start_etcd "$@" ;;
	*) usage ;;
	esac
}

main "$@"

#!/usr/bin/env bash
# cluster.sh: a local multi-host ovs-vnet demo living entirely inside network
# namespaces this script creates (shared/DESIGN.md §6, issue 9):
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
#   hack/cluster.sh down DIR
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
# etcd, and deletes the namespaces; it keeps logs and args for inspection. Waits
# can be raised on a slow machine: CLUSTER_READY_TIMEOUT (daemon /readyz, 60 s),
# CLUSTER_ETCD_TIMEOUT (30 s), CLUSTER_STOP_TIMEOUT (20 s).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly REPO=${SCRIPT_DIR%/*}
readonly SANDBOX=$SCRIPT_DIR/ovs-sandbox.sh
# ovs-vswitchd, ovsdb-server (and ip, on some systems) live in sbin, which a
# non-login PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin

# The underlay. MTU 9000 rather than 1600: a 1500-byte network needs 50 bytes
# more for VXLAN and Geneve without options (IPv4 outer), Geneve options add up to
# 252 more, and a network with a larger MTU (the API allows up to 9000) still
# fits up to 8950. veths and Linux bridges take 9000 at no cost; it applies only
# inside our namespaces.
readonly UNDERLAY_PREFIX=10.99.0
readonly UNDERLAY_LEN=24
readonly UNDERLAY_MTU=9000
readonly ETCD_HOSTS=(251 252 253) # member I is 10.99.0.${ETCD_HOSTS[I-1]}
readonly API_ADDR=127.0.0.1:9476  # per host namespace, so the same on every host
readonly ETCD_PREFIX=/ovs-vnet

# Timeouts in seconds; tests on a loaded machine may raise them.
READY_TIMEOUT=${CLUSTER_READY_TIMEOUT:-60} # daemon /readyz after start
ETCD_TIMEOUT=${CLUSTER_ETCD_TIMEOUT:-30}   # etcd cluster (or member) healthy
STOP_TIMEOUT=${CLUSTER_STOP_TIMEOUT:-20}   # graceful exit after SIGTERM, then SIGKILL
readonly LOCK_TIMEOUT=300                  # a concurrent up/down on the same DIR

DIR=
UP_DONE=1

usage() {
	cat >&2 <<'EOF'
usage: cluster.sh up N DIR [--backend ovs|linux] [--bin PATH] [--tunnel vxlan|geneve]
                           [--lease DURATION] [-- EXTRA-DAEMON-FLAGS...]
       cluster.sh down DIR
       cluster.sh status DIR                 # the host lines again, and what runs
       cluster.sh stop-host DIR NAME [--signal KILL|TERM]   # default KILL
       cluster.sh start-host DIR NAME        # same flags as before
       cluster.sh stop-etcd DIR I            # SIGKILL etcd member I (1-3)
       cluster.sh start-etcd DIR I
EOF
	exit 2
}

log() { echo "cluster: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# fd 8 is the lock: every process we start gets 8>&- so that no daemon keeps it.
take_lock() {
	exec 8>"$DIR/.lock"
	flock -w "$LOCK_TIMEOUT" 8 || die "timed out waiting for the lock on $DIR/.lock"
}

# DIR from an argument: absolute, and without a newline (args files are line based).
set_dir() {
	[[ $1 != *$'\n'* ]] || die "DIR must not contain a newline"
	DIR=$(realpath -m -- "$1")
}

load_env() {
	[[ -f $DIR/cluster.env ]] || die "$DIR has no cluster.env (not a cluster directory)"
	# shellcheck source=/dev/null
	source "$DIR/cluster.env"
}

ns_exists() { [[ -e /run/netns/$1 ]]; }

# --- processes ---------------------------------------------------------------

# A zombie counts as gone: PID 1 in containers does not always reap orphans.
pid_alive() {
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $state != Z* ]]
}

# Prints the pid in PIDFILE if that process is still the one we started: its
# command line holds MARK as one whole argument (a path unique to this DIR), which
# guards against pid reuse and against signalling anyone else's process.
our_pid() {
	local pidfile=$1 mark=$2 pid=''
	[[ -r $pidfile ]] || return 1
	read -r pid <"$pidfile" || [[ -n $pid ]] || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$mark" || return 1
	echo "$pid"
}

wait_gone() {
	local pid=$1 deadline=$((SECONDS + $2))
	while pid_alive "$pid"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# stop_group SIG WHAT PIDFILE MARK [WHAT PIDFILE MARK...] signals every process
# of the PIDFILEs that is still ours at once, then waits for them all; after
# SIGTERM, one still running STOP_TIMEOUT later gets SIGKILL. Removes the pid files.
stop_group() {
	local sig=$1 whats=() pids=() files=() marks=() pid i left
	shift
	while (($# >= 3)); do
		if pid=$(our_pid "$2" "$3"); then
			log "stopping $1 (pid $pid, SIG$sig)"
			kill "-$sig" "$pid" 2>/dev/null || true
			whats+=("$1") pids+=("$pid") files+=("$2") marks+=("$3")
		else
			rm -f "$2"
		fi
		shift 3
	done
	local deadline=$((SECONDS + STOP_TIMEOUT))
	for i in "${!pids[@]}"; do
		left=$((deadline - SECONDS))
		if ! wait_gone "${pids[i]}" $((left > 0 ? left : 0)); then
			log "${whats[i]} (pid ${pids[i]}) still runs ${STOP_TIMEOUT}s after SIG$sig; sending SIGKILL"
			if [[ $(our_pid "${files[i]}" "${marks[i]}" || true) == "${pids[i]}" ]]; then
				kill -KILL "${pids[i]}" 2>/dev/null || true
			fi
			wait_gone "${pids[i]}" 5 || die "${whats[i]} (pid ${pids[i]}) would not die"
		fi
		rm -f "${files[i]}"
	done
}

# Starts a long-lived process in the background, in namespace NS, in a session of
# its own (a Ctrl-C or hangup of the caller's terminal does not reach it), with no
# fd of ours but its log. `ip netns exec` and setsid exec (they do not fork here:
# a background job of a script is no process group leader), so $! is the
# process itself.
spawn() {
	local ns=$1 pidfile=$2 logfile=$3
	shift 3
	setsid ip netns exec "$ns" "$@" </dev/null >>"$logfile" 2>&1 8>&- &
	echo $! >"$pidfile"
}

# --- namespaces and underlay ------------------------------------------------

underlay_ns() { echo "${NS_PREFIX}-u"; }
host_ns() { echo "${NS_PREFIX}-h$1"; }
etcd_ip() { echo "$UNDERLAY_PREFIX.${ETCD_HOSTS[$1 - 1]}"; }
etcd_endpoints() {
	local i urls=()
	for i in 1 2 3; do urls+=("http://$(etcd_ip "$i"):2379"); done
	local IFS=,
	echo "${urls[*]}"
}

add_ns() {
	local ns=$1
	ns_exists "$ns" && die "network namespace $ns exists already (not ours)"
	ip netns add "$ns"
	# Recorded at once so that a failure further on still deletes it.
	echo "$ns" >>"$DIR/namespaces"
	ip -n "$ns" link set lo up
}

setup_underlay() {
	local u
	u=$(underlay_ns)
	add_ns "$u"
	ip -n "$u" link add br0 type bridge
	ip -n "$u" link set br0 mtu "$UNDERLAY_MTU" up
	local i
	for i in 1 2 3; do
		ip -n "$u" addr add "$(etcd_ip "$i")/$UNDERLAY_LEN" dev br0
	done
}

# Host K's namespace and its veth: hK in the underlay (a port of br0), ul0 in the
# host. The pair is created inside the underlay namespace so that not even for a
# moment does a link appear in the root namespace.
setup_host_ns() {
	local k=$1 u ns
	u=$(underlay_ns)
	ns=$(host_ns "$k")
	add_ns "$ns"
	ip -n "$u" link add "h$k" mtu "$UNDERLAY_MTU" type veth peer name ul0 mtu "$UNDERLAY_MTU" netns "$ns"
	ip -n "$u" link set "h$k" master br0 up
	if [[ $BACKEND == ovs ]]; then
		# ovs-vswitchd reads ul0 from a raw socket without the virtio-net header,
		# so a packet arriving with a partial checksum (TX checksum offload of the
		# sender: etcd, the other hosts' kernels) would reach the host's stack
		# through br-phy with a wrong checksum, and TCP to etcd would stall.
		ip netns exec "$u" ethtool -K "h$k" tx off >/dev/null
	fi
	ip -n "$ns" link set ul0 up
	if [[ $BACKEND == linux ]]; then
		ip -n "$ns" addr add "$UNDERLAY_PREFIX.$k/$UNDERLAY_LEN" dev ul0
	fi
}

# The userspace tunnelling recipe (DESIGN.md §6): the netdev bridge br-phy holds
# ul0, the host's underlay address lives on br-phy's internal interface, so
# ovs-vswitchd routes (and ARPs for) the outer packets of its tunnels itself,
# from the routes of the host namespace.
setup_br_phy() {
	local k=$1 ns db
	ns=$(host_ns "$k")
	db="unix:$DIR/h$k/ovs/db.sock"
	timeout 30 ovs-vsctl --db="$db" \
		-- --may-exist add-br br-phy \
		-- set Bridge br-phy datapath_type=netdev fail_mode=standalone \
		external_ids:created-by=cluster.sh \
		-- --may-exist add-port br-phy ul0 \
		-- set Interface br-phy mtu_request="$UNDERLAY_MTU"
	ip -n "$ns" addr add "$UNDERLAY_PREFIX.$k/$UNDERLAY_LEN" dev br-phy
	ip -n "$ns" link set br-phy up
}

# Host K's OVS: its sandbox inside the host namespace, then br-phy. Run in the
# background for all hosts at once; the sandbox cleans up after its own failure.
setup_host_ovs() {
	local k=$1
	# --no-tso: with userspace TSO on, OVS 3.1 reads the ports' packets with their
	# offload flags and drops them at the tunnel ("Tunneling packets with HW
	# offload flags is not supported: packet dropped", coverage
	# netdev_push_header_drops): ping works, TCP between hosts stalls (measured).
	# Without it the daemon turns TX checksum offload off on its veths
	# (DESIGN.md §6), and TCP crosses the tunnel.
	"$SANDBOX" up "$DIR/h$k/ovs" --netns "$(host_ns "$k")" --no-tso 8>&- >&2
	setup_br_phy "$k"
}

# --- etcd ----------------------------------------------------------------------

etcd_mark() { echo "--data-dir=$DIR/etcd/e$1"; }

write_etcd_args() {
	local i=$1 ip cluster=() j
	ip=$(etcd_ip "$i")
	for j in 1 2 3; do cluster+=("e$j=http://$(etcd_ip "$j"):2380"); done
	local IFS=,
	printf '%s\n' "$ETCD_BIN" --name "e$i" "$(etcd_mark "$i")" \
		--listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379" \
		--listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
		--initial-cluster "${cluster[*]}" --initial-cluster-state new \
		--initial-cluster-token "$NS_PREFIX" \
		--logger zap --log-outputs stderr \
		>"$DIR/etcd/e$i.args"
}

# Starts member I from its args file (with its data dir present etcd ignores the
# --initial-* flags and rejoins as the member it was).
start_etcd_member() {
	local i=$1 args
	mapfile -t args <"$DIR/etcd/e$i.args"
	mkdir -p "$DIR/etcd/e$i"
	chmod 700 "$DIR/etcd/e$i"
	spawn "$(underlay_ns)" "$DIR/etcd/e$i.pid" "$DIR/etcd/e$i.log" "${args[@]}"
}

# Waits until every endpoint given (comma separated) reports healthy.
wait_etcd_healthy() {
	local endpoints=$1 deadline=$((SECONDS + ETCD_TIMEOUT)) out line
	until out=$(ETCDCTL_API=3 timeout 10 ip netns exec "$(underlay_ns)" \
		etcdctl --endpoints="$endpoints" --dial-timeout=2s --command-timeout=3s endpoint health 2>&1); do
		if ((SECONDS >= deadline)); then
			log "etcd not healthy after ${ETCD_TIMEOUT}s:"
			echo "$out" >&2
			return 1
		fi
		sleep 0.3
	done
	while IFS= read -r line; do log "$line"; done <<<"$out"
}

# Waits until member I listens on its client and peer ports. Without a quorum
# that is all a member does: it serves no request (not even endpoint status)
# before it has published itself through raft.
wait_etcd_listening() {
	local i=$1 ip deadline=$((SECONDS + ETCD_TIMEOUT)) n
	ip=$(etcd_ip "$i")
	while :; do
		n=$(ip netns exec "$(underlay_ns)" ss -Hltn "( src $ip:2379 or src $ip:2380 )" | wc -l)
		((n >= 2)) && return 0
		our_pid "$DIR/etcd/e$i.pid" "$(etcd_mark "$i")" >/dev/null || {
			log "etcd member e$i exited; last lines of $DIR/etcd/e$i.log:"
			tail -n 20 "$DIR/etcd/e$i.log" >&2 || true
			return 1
		}
		if ((SECONDS >= deadline)); then
			log "etcd member e$i does not listen on $ip:2379 and :2380 after ${ETCD_TIMEOUT}s"
			return 1
		fi
		sleep 0.1
	done
}

# --- daemons -----------------------------------------------------------------

daemon_mark() { echo "$DIR/h$1/state"; }

write_daemon_args() {
	local k=$1 args=("$BIN" --backend "$BACKEND")
	[[ $BACKEND == ovs ]] && args+=(--ovsdb "unix:$DIR/h$k/ovs/db.sock")
	args+=(--state-dir "$(daemon_mark "$k")" --listen "$API_ADDR"
		--etcd-endpoints "$(etcd_endpoints)" --etcd-prefix "$ETCD_PREFIX"
		--host-name "h$k" --underlay-ip "$UNDERLAY_PREFIX.$k"
		--tunnel "$TUNNEL" --host-lease "$LEASE" --log-level debug)
	args+=("${EXTRA[@]}")
	printf '%s\n' "${args[@]}" >"$DIR/h$k/args"
}

start_daemon() {
	local k=$1 args
	mapfile -t args <"$DIR/h$k/args"
	mkdir -p "$DIR/h$k/state"
	printf -- '----- %s start: %s\n' "$(date -Is)" "${args[*]}" >>"$DIR/h$k/daemon.log"
	spawn "$(host_ns "$k")" "$DIR/h$k/daemon.pid" "$DIR/h$k/daemon.log" "${args[@]}"
}

readyz() {
	timeout 5 ip netns exec "$(host_ns "$1")" curl -sf -m 2 -o /dev/null "http://$API_ADDR/readyz"
}

# Waits for /readyz of every host given; on failure prints the log tail.
wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) k pending=("$@") left
	while ((${#pending[@]})); do
		left=()
		for k in "${pending[@]}"; do
			readyz "$k" && continue
			if ! our_pid "$DIR/h$k/daemon.pid" "$(daemon_mark "$k")" >/dev/null; then
				log "daemon of h$k exited during startup; last lines of $DIR/h$k/daemon.log:"
				tail -n 40 "$DIR/h$k/daemon.log" >&2 || true
				return 1
			fi
			left+=("$k")
		done
		pending=("${left[@]}")
		((${#pending[@]})) || break
		if ((SECONDS >= deadline)); then
			for k in "${pending[@]}"; do
				log "daemon of h$k not ready after ${READY_TIMEOUT}s; last lines of $DIR/h$k/daemon.log:"
				tail -n 40 "$DIR/h$k/daemon.log" >&2 || true
			done
			return 1
		fi
		sleep 0.2
	done
}

host_line() { echo "host h$1 netns $(host_ns "$1") api http://$API_ADDR"; }

# The number K of host NAME (hK), checked against the cluster's N.
host_num() {
	[[ $1 =~ ^h([1-9][0-9]*)$ ]] || die "no host $1 (hosts are h1..h$N)"
	local k=${BASH_REMATCH[1]}
	((k <= N)) || die "no host $1 (hosts are h1..h$N)"
	echo "$k"
}

etcd_num() {
	[[ $1 =~ ^[1-3]$ ]] || die "no etcd member $1 (members are 1..3)"
	echo "$1"
}

# --- teardown ----------------------------------------------------------------

# Names the processes still living in any of the namespaces NS...: not ours (we
# stopped ours), so left alone; they keep their namespace alive after `down`.
report_ns_users() {
	local ns ino path pid
	local -A name_of=()
	for ns; do
		ino=$(stat -L -c %i "/run/netns/$ns" 2>/dev/null) && name_of[$ino]=$ns
	done
	((${#name_of[@]})) || return 0
	while read -r ino path; do
		[[ -n ${name_of[$ino]:-} ]] || continue
		pid=${path#/proc/}
		pid=${pid%%/*}
		pid_alive "$pid" || continue
		log "warning: pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)) still runs in ${name_of[$ino]}; it keeps that namespace alive"
	done < <(stat -L -c '%i %n' /proc/[0-9]*/ns/net 2>/dev/null || true)
}

# Undoes whatever `up` made, in reverse; safe on a DIR that is half up or down.
teardown() {
	local k i ns
	[[ -f $DIR/cluster.env ]] || return 0
	load_env
	# Each group at once (a daemon takes about a second to shut down cleanly).
	local group=() jobs=()
	for ((k = N; k >= 1; k--)); do
		group+=("daemon of h$k" "$DIR/h$k/daemon.pid" "$(daemon_mark "$k")")
	done
	stop_group TERM "${group[@]}"
	for ((k = N; k >= 1; k--)); do
		if [[ -d $DIR/h$k/ovs ]]; then
			"$SANDBOX" down "$DIR/h$k/ovs" 8>&- >&2 &
			jobs+=("$k:$!")
		fi
	done
	for i in "${jobs[@]}"; do
		wait "${i#*:}" || log "warning: sandbox down of h${i%%:*} failed"
	done
	# etcd one member after the other: stopped all at once, a leader spends
	# seconds trying to hand its leadership to members that are going away.
	for i in 3 2 1; do
		stop_group TERM "etcd member e$i" "$DIR/etcd/e$i.pid" "$(etcd_mark "$i")"
		rm -rf "$DIR/etcd/e$i"
	done
	if [[ -f $DIR/namespaces ]]; then
		# Hosts first, the underlay last: the reverse of their creation.
		local namespaces=()
		while IFS= read -r ns; do
			if [[ -n $ns ]] && ns_exists "$ns"; then namespaces+=("$ns"); fi
		done < <(tac "$DIR/namespaces")
		if ((${#namespaces[@]})); then report_ns_users "${namespaces[@]}"; fi
		for ns in "${namespaces[@]}"; do
			ip netns delete "$ns" || die "could not delete network namespace $ns"
		done
		rm -f "$DIR/namespaces"
	fi
	if [[ ${BUILT:-0} == 1 ]]; then rm -f "$DIR/ovs-vnet"; fi
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
	((rc != 0)) || rc=1
	if ((rc == 130 || rc == 143)); then log "interrupted; tearing down what was made"; else log "up failed; tearing down what was made"; fi
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
		local jobs=() j failed=0
		for ((k = 1; k <= N; k++)); do
			setup_host_ovs "$k" &
			jobs+=("$!")
		done
		for j in "${jobs[@]}"; do wait "$j" || failed=1; done
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

cmd_down() {
	[[ $# -eq 1 ]] || usage
	set_dir "$1"
	[[ -d $DIR ]] || return 0
	take_lock
	teardown
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

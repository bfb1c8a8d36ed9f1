# cluster-lib.sh: the building blocks of hack/cluster.sh, which sources it
# (it is no command of its own): the cluster's constants, locking, processes,
# namespaces and underlay, etcd, daemons and teardown. They work on the
# globals cluster.sh sets: DIR, SANDBOX, and those DIR/cluster.env holds
# (NS_PREFIX, N, BACKEND, BIN, BUILT, TUNNEL, LEASE, ETCD_BIN, EXTRA).
# shellcheck shell=bash

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
	# What `down` may delete is named after it: refuse a file that lost it.
	[[ ${NS_PREFIX:-} =~ ^vnc-[0-9a-f]{6}$ ]] || die "$DIR/cluster.env: NS_PREFIX '${NS_PREFIX:-}' is not vnc-<6 hex digits>"
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

# Up's background jobs (pids): an interrupted `up` lets them end before it
# tears down, or they would go on making what the teardown removes.
SETUP_JOBS=()

# Waits STOP_TIMEOUT at most for the setup jobs (each bounded by its own
# timeouts), then stops what is left of them, children included.
reap_setup_jobs() {
	local pid deadline=$((SECONDS + STOP_TIMEOUT))
	((${#SETUP_JOBS[@]})) || return 0
	for pid in "${SETUP_JOBS[@]}"; do
		pid_alive "$pid" || continue
		log "waiting for setup job $pid to end"
		while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
		if pid_alive "$pid"; then
			log "setup job $pid still runs after ${STOP_TIMEOUT}s; stopping it and its children"
			kill_tree "$pid"
		fi
	done
	for pid in "${SETUP_JOBS[@]}"; do wait "$pid" 2>/dev/null || true; done
	SETUP_JOBS=()
}

# kill_tree PID sends SIGTERM to PID and every descendant of it (listed
# before any is signalled, so none escapes by being orphaned), and SIGKILL
# to those still there 5 s later. For our own jobs only.
kill_tree() {
	local pids=("$1") i=0 child
	while ((i < ${#pids[@]})); do
		for child in $(ps -o pid= --ppid "${pids[i]}" 2>/dev/null || true); do pids+=("$child"); done
		i=$((i + 1))
	done
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for child in "${pids[@]}"; do
		wait_gone "$child" 5 || kill -KILL "$child" 2>/dev/null || true
	done
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

# The userspace tunnelling recipe (docs/DESIGN.md §6): the netdev bridge br-phy holds
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
	# (docs/DESIGN.md §6), and TCP crosses the tunnel.
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
			[[ -n $ns ]] || continue
			# Only this cluster's names, whatever the file says.
			if ! [[ $ns =~ ^${NS_PREFIX}-(u|h[1-9][0-9]*)$ ]]; then
				log "warning: $DIR/namespaces lists $ns, which is no namespace of cluster $NS_PREFIX; left alone"
				continue
			fi
			if ns_exists "$ns"; then namespaces+=("$ns"); fi
		done < <(tac "$DIR/namespaces")
		if ((${#namespaces[@]})); then report_ns_users "${namespaces[@]}"; fi
		for ns in "${namespaces[@]}"; do
			ip netns delete "$ns" || die "could not delete network namespace $ns"
		done
		rm -f "$DIR/namespaces"
	fi
	if [[ ${BUILT:-0} == 1 ]]; then rm -f "$DIR/ovs-vnet"; fi
}


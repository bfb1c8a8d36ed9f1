#!/usr/bin/env bash
# ovs-sandbox.sh: a private ovsdb-server + ovs-vswitchd (userspace datapath) living
# entirely under one directory, for development and tests on machines without the
# OVS kernel module (see docs/DESIGN.md §6).
#
#   hack/ovs-sandbox.sh up DIR [--netns NAME]
#   hack/ovs-sandbox.sh down DIR
#   hack/ovs-sandbox.sh env DIR
#   hack/ovs-sandbox.sh restart-vswitchd DIR   # also after it was killed (crash test)
#   hack/ovs-sandbox.sh restart-ovsdb DIR      # same conf.db; also after it was killed
#
# Files under DIR (fixed names, other code relies on them):
#   db.sock               OVSDB socket (punix), the only remote ovsdb-server serves
#   ovsdb-server.ctl      unixctl socket of ovsdb-server
#   ovs-vswitchd.ctl      unixctl socket of ovs-vswitchd (our Go code speaks JSON-RPC to it)
#   <bridge>.mgmt         OpenFlow management sockets (ovs-ofctl finds them via OVS_RUNDIR)
#   *.pid, *.log, conf.db the daemons' pid files, logs and database
#   netns, netns-created  the namespace the daemons run in, and whether `up` made it
#
# The control sockets get fixed names (--unixctl) instead of OVS's default
# NAME.<pid>.ctl so that callers need not read the pid file to find them; `up` adds
# NAME.<pid>.ctl symlinks so plain `ovs-appctl` (default target lookup) works too.
set -euo pipefail

readonly SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
readonly READY_TIMEOUT=30 # seconds for the daemons to answer after start
readonly STOP_TIMEOUT=10  # seconds for a graceful exit before we signal
readonly LOCK_TIMEOUT=120 # seconds to wait for a concurrent up/down on the same DIR

DIR=
NETNS=
TSO=true
UP_DONE=0

usage() {
	cat >&2 <<'EOF'
usage: ovs-sandbox.sh up DIR [--netns NAME] [--no-tso]
       ovs-sandbox.sh down DIR
       ovs-sandbox.sh restart-vswitchd DIR
       ovs-sandbox.sh restart-ovsdb DIR
       ovs-sandbox.sh env DIR      # eval "$(ovs-sandbox.sh env DIR)"; ovs-vsctl show
EOF
	exit 2
}

log() { echo "ovs-sandbox: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# Bounded with timeout(1) rather than the tools' own --timeout: those end by
# SIGALRM, which makes bash print "Alarm clock" noise on our stderr.
vsctl() { timeout 5 ovs-vsctl --db="unix:$DIR/db.sock" "$@"; }
appctl() { timeout 5 ovs-appctl -t "$DIR/$1.ctl" "${@:2}"; }

# Runs a command in the sandbox's namespace (or ours when it has none).
in_ns() {
	if [[ -n $NETNS ]]; then
		ip netns exec "$NETNS" "$@"
	else
		"$@"
	fi
}

# Serialises up/down on one DIR: `go test` runs packages in parallel and several
# may bring up the same shared sandbox at once.
take_lock() {
	exec 9>"$DIR/.lock"
	flock -w "$LOCK_TIMEOUT" 9 || die "timed out waiting for the lock on $DIR/.lock"
}

# Prints the pid from DIR/NAME.pid if that process is still the daemon this
# sandbox started. Checking comm and the exact --pidfile argument guards against
# pid reuse and against signalling another sandbox's (or the system's) daemon.
our_pid() {
	local name=$1 pidfile="$DIR/$1.pid" pid='' comm
	[[ -r $pidfile ]] || return 1
	read -r pid <"$pidfile" || [[ -n $pid ]] || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	[[ $comm == "$name" ]] || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "--pidfile=$pidfile" || return 1
	echo "$pid"
}

# A zombie counts as gone: PID 1 in containers does not always reap orphans.
pid_alive() {
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $state != Z* ]]
}

wait_gone() {
	local pid=$1 deadline=$((SECONDS + $2))
	while pid_alive "$pid"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# Signals pid only while it is still our daemon NAME (it may have exited and its
# pid been reused while we waited).
signal_ours() {
	local name=$1 pid=$2 sig=$3 cur
	cur=$(our_pid "$name") || return 0
	[[ $cur == "$pid" ]] || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
}

# Stops daemon NAME: first politely over its control socket (ARGS are the
# ovs-appctl command), then TERM, then KILL. Returns 1 if it had to signal.
stop_daemon() {
	local name=$1 pid
	shift
	pid=$(our_pid "$name") || return 0
	appctl "$name" "$@" >/dev/null 2>&1 || true
	wait_gone "$pid" "$STOP_TIMEOUT" && return 0
	log "$name (pid $pid) did not exit after 'ovs-appctl $*'; sending SIGTERM"
	signal_ours "$name" "$pid" TERM
	wait_gone "$pid" 5 && return 1
	log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
	signal_ours "$name" "$pid" KILL
	wait_gone "$pid" 5 || die "$name (pid $pid) would not die"
	return 1
}

# A vswitchd that was killed instead of `exit --cleanup` leaves its tap devices
# (ovs-netdev, bridges, internal ports) in the namespace, and the next vswitchd
# there could not create them again. Only names from our own database that are
# tap devices no process holds open are removed: a tap still attached belongs to
# someone else (e.g. another vswitchd wrongly sharing this namespace).
#
# fdinfo names the tap but not its namespace, and every userspace vswitchd has an
# "ovs-netdev", so a holder counts only if it lives in the sandbox's namespace.
tap_attached() {
	local name=$1 want f pid
	if [[ -n $NETNS ]]; then
		want=$(stat -L -c %i "/run/netns/$NETNS")
	else
		want=$(stat -L -c %i /proc/self/ns/net)
	fi
	while IFS= read -r f; do
		pid=${f#/proc/}
		pid=${pid%%/*}
		[[ $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == "$want" ]] && return 0
	done < <(grep -lsxF -- $'iff:\t'"$name" /proc/[0-9]*/fdinfo/* || true)
	return 1
}

remove_leftover_taps() {
	local names=$1 name
	for name in $names ovs-netdev; do
		in_ns ip -d link show dev "$name" 2>/dev/null | grep -q 'tun type tap' || continue
		if tap_attached "$name"; then
			log "leaving tap device $name: another process holds it"
			continue
		fi
		log "removing leftover tap device $name"
		in_ns ip link del dev "$name" 2>/dev/null || true
	done
}

# Brings everything this DIR started down; safe on a DIR that is half up or down.
stop_all() {
	local created=0 ifaces=
	NETNS=
	[[ -f $DIR/netns ]] && NETNS=$(<"$DIR/netns")
	[[ -f $DIR/netns-created ]] && created=1
	local skip_taps=$created # deleting the namespace removes them anyway
	if [[ -n $NETNS && ! -e /run/netns/$NETNS ]]; then
		# Deleted under us: its devices are out of our reach, and the root
		# namespace's same-named ones are not ours.
		NETNS=
		created=0
		skip_taps=1
	fi

	if our_pid ovs-vswitchd >/dev/null; then
		# Read while ovsdb-server still runs, in case the fallback needs it.
		ifaces=$(vsctl --bare --columns=name find Interface type=internal 2>/dev/null || true)
		if ! stop_daemon ovs-vswitchd exit --cleanup && ((!skip_taps)); then
			remove_leftover_taps "$ifaces"
		fi
	fi
	stop_daemon ovsdb-server exit || true

	rm -f "$DIR"/db.sock "$DIR"/*.ctl "$DIR"/*.pid "$DIR"/*.mgmt "$DIR"/*.snoop \
		"$DIR"/.conf.db.~lock~
	if ((created)); then
		ip netns delete "$NETNS" || die "could not delete network namespace $NETNS"
	fi
	rm -f "$DIR/netns" "$DIR/netns-created"
}

is_up() {
	our_pid ovsdb-server >/dev/null && our_pid ovs-vswitchd >/dev/null &&
		vsctl show >/dev/null 2>&1 &&
		appctl ovs-vswitchd version >/dev/null 2>&1
}

ready_line() {
	echo "ovs sandbox up: db=unix:$DIR/db.sock netns=${NETNS:--} vswitchd-ctl=$DIR/ovs-vswitchd.ctl"
}

dump_logs() {
	local f
	for f in ovsdb-server.log ovs-vswitchd.log; do
		echo "----- last 30 lines of $DIR/$f -----" >&2
		tail -n 30 "$DIR/$f" >&2 2>/dev/null || echo "(no log)" >&2
	done
}

# On a failed `up`, show why and leave nothing running behind.
on_up_exit() {
	local rc=$?
	((UP_DONE)) && return 0
	((rc != 0)) || rc=1
	log "up failed"
	dump_logs
	stop_all >/dev/null 2>&1 || true
	exit "$rc"
}

setup_netns() {
	if [[ ! -e /run/netns/$NETNS ]]; then
		ip netns add "$NETNS" || [[ -e /run/netns/$NETNS ]] || die "cannot create network namespace $NETNS"
		# Recorded at once so that a failure further on still deletes it.
		touch "$DIR/netns-created"
	fi
	echo "$NETNS" >"$DIR/netns"
	ip -n "$NETNS" link set lo up
}

# -vconsole:err comes before --log-file so that even the "opened log file" line
# stays off our stderr; real errors still show there and in the logs.
# The daemons get every OVS directory pointed into DIR so nothing they write
# (notably vswitchd's bridge .mgmt sockets under OVS_RUNDIR) lands in the system's
# /var/run/openvswitch. 9>&- keeps the lock fd out of the long-lived daemons.
start_daemon() {
	in_ns env OVS_RUNDIR="$DIR" OVS_LOGDIR="$DIR" OVS_DBDIR="$DIR" \
		timeout "$READY_TIMEOUT" "$@" 9>&-
}

cmd_up() {
	local arg recorded=
	[[ $# -ge 1 ]] || usage
	DIR=$1
	shift
	while [[ $# -gt 0 ]]; do
		arg=$1
		case $arg in
		--netns)
			[[ $# -ge 2 && -n $2 ]] || usage
			NETNS=$2
			shift 2
			;;
		--netns=*)
			NETNS=${arg#--netns=}
			[[ -n $NETNS ]] || usage
			shift
			;;
		--no-tso)
			# Like a stock OVS: the daemon must then turn TX checksum offload off on its veths.
			TSO=false
			shift
			;;
		*) usage ;;
		esac
	done
	local want_netns=$NETNS

	mkdir -p "$DIR"
	DIR=$(realpath -e -- "$DIR")
	take_lock

	[[ -f $DIR/netns ]] && recorded=$(<"$DIR/netns")
	if is_up; then
		[[ $recorded == "$want_netns" ]] ||
			die "$DIR is already up with netns=${recorded:--}; run down first"
		NETNS=$recorded
		ready_line
		return 0
	fi

	# Leftovers of a crashed or half-started sandbox would confuse the new daemons.
	stop_all
	NETNS=$want_netns
	trap on_up_exit EXIT

	# A fresh database each time: tests want a known state. The previous one stays
	# after `down` for inspection, like the logs; those are rotated so that a
	# failure report shows this run only.
	local f
	for f in ovsdb-server.log ovs-vswitchd.log; do
		if [[ -f $DIR/$f ]]; then mv -f "$DIR/$f" "$DIR/$f.prev"; fi
	done
	rm -f "$DIR/conf.db"
	ovsdb-tool create "$DIR/conf.db" "$SCHEMA"

	if [[ -n $NETNS ]]; then setup_netns; fi

	start_daemon ovsdb-server "$DIR/conf.db" -vconsole:err \
		--remote="punix:$DIR/db.sock" \
		--unixctl="$DIR/ovsdb-server.ctl" \
		--pidfile="$DIR/ovsdb-server.pid" \
		--log-file="$DIR/ovsdb-server.log" \
		--detach --no-chdir

	# TSO must be on before vswitchd starts (it is read once at startup): without
	# it, or TX checksum offload off on the veths, TCP through netdev+veth stalls.
	vsctl --no-wait -- init -- set Open_vSwitch . other_config:userspace-tso-enable=$TSO

	link_ctl ovsdb-server
	start_vswitchd

	UP_DONE=1
	trap - EXIT
	ready_line
}

# link_ctl adds NAME.<pid>.ctl, the name plain ovs-appctl looks for.
link_ctl() {
	local pid
	pid=$(our_pid "$1") || die "$1 is not running after start"
	ln -sfn "$1.ctl" "$DIR/$1.$pid.ctl"
}

start_vswitchd() {
	start_daemon ovs-vswitchd "unix:$DIR/db.sock" -vconsole:err \
		--unixctl="$DIR/ovs-vswitchd.ctl" \
		--pidfile="$DIR/ovs-vswitchd.pid" \
		--log-file="$DIR/ovs-vswitchd.log" \
		--detach --no-chdir
	link_ctl ovs-vswitchd
	local deadline=$((SECONDS + READY_TIMEOUT))
	until appctl ovs-vswitchd version >/dev/null 2>&1 &&
		vsctl get Open_vSwitch . other_config >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "daemons not ready after ${READY_TIMEOUT}s"
		our_pid ovs-vswitchd >/dev/null || die "ovs-vswitchd exited during startup"
		sleep 0.2
	done
}

# Restarts ovs-vswitchd alone, as an upgrade or a crash would: the database and
# its bridges stay, every OpenFlow flow is lost until a controller puts it back.
cmd_restart_vswitchd() {
	[[ $# -eq 1 ]] || usage
	DIR=$(realpath -e -- "$1")
	take_lock
	# vswitchd itself may be gone: a test killed it to stand for a crash.
	our_pid ovsdb-server >/dev/null || die "$DIR is not up (no ovsdb-server)"
	NETNS=
	[[ -f $DIR/netns ]] && NETNS=$(<"$DIR/netns")
	rm -f "$DIR"/ovs-vswitchd.*.ctl
	stop_daemon ovs-vswitchd exit || die "could not stop ovs-vswitchd"
	start_vswitchd
	ready_line
}

# Restarts ovsdb-server alone on the same conf.db, as an upgrade or a crash
# would (a test may have killed it first): bridges and ports stay in the
# database, ovs-vswitchd and other clients must reconnect by themselves.
cmd_restart_ovsdb() {
	[[ $# -eq 1 ]] || usage
	DIR=$(realpath -e -- "$1")
	take_lock
	[[ -f $DIR/conf.db ]] || die "$DIR has no conf.db"
	NETNS=
	[[ -f $DIR/netns ]] && NETNS=$(<"$DIR/netns")
	rm -f "$DIR"/ovsdb-server.*.ctl
	stop_daemon ovsdb-server exit || true
	rm -f "$DIR/db.sock" "$DIR/ovsdb-server.ctl"
	start_daemon ovsdb-server "$DIR/conf.db" -vconsole:err \
		--remote="punix:$DIR/db.sock" \
		--unixctl="$DIR/ovsdb-server.ctl" \
		--pidfile="$DIR/ovsdb-server.pid" \
		--log-file="$DIR/ovsdb-server.log" \
		--detach --no-chdir
	link_ctl ovsdb-server
	local deadline=$((SECONDS + READY_TIMEOUT))
	until vsctl --no-wait get Open_vSwitch . other_config >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "ovsdb-server not ready after ${READY_TIMEOUT}s"
		sleep 0.1
	done
	ready_line
}

cmd_down() {
	[[ $# -eq 1 ]] || usage
	DIR=$(realpath -m -- "$1")
	[[ -d $DIR ]] || return 0
	take_lock
	stop_all
}

# Only what the OVS command-line tools consult: with OVS_RUNDIR set, ovs-vsctl
# defaults to DIR/db.sock, ovs-ofctl finds DIR/<bridge>.mgmt and ovs-appctl finds
# DIR/ovs-vswitchd.pid. Sockets are filesystem paths, so this works from any
# namespace.
cmd_env() {
	[[ $# -eq 1 ]] || usage
	DIR=$(realpath -m -- "$1")
	local ns=
	[[ -f $DIR/netns ]] && ns=$(<"$DIR/netns")
	[[ -S $DIR/db.sock ]] || log "warning: $DIR/db.sock does not exist (sandbox down?)"
	printf 'export OVS_RUNDIR=%q\n' "$DIR"
	printf 'export OVS_LOGDIR=%q\n' "$DIR"
	printf 'export OVS_DBDIR=%q\n' "$DIR"
	printf 'export DB_SOCK=%q\n' "$DIR/db.sock"
	if [[ -n $ns ]]; then
		printf 'export OVS_SANDBOX_NETNS=%q\n' "$ns"
	else
		echo 'unset OVS_SANDBOX_NETNS'
	fi
}

main() {
	[[ $# -ge 2 ]] || usage
	local cmd=$1
	shift
	case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	env) cmd_env "$@" ;;
	restart-vswitchd) cmd_restart_vswitchd "$@" ;;
	restart-ovsdb) cmd_restart_ovsdb "$@" ;;
	*) usage ;;
	esac
}

main "$@"

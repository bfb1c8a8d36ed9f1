#!/usr/bin/env bash
# soak.sh: a churn soak of the daemon on the OVS backend (issue 6; not in CI).
#
#   hack/soak.sh [DURATION_SECONDS] [SAMPLE_INTERVAL_SECONDS]     (defaults 600 and 10)
#
# Everything runs inside a "host" network namespace of its own: an OVS sandbox
# (hack/ovs-sandbox.sh --netns), the daemon (built without -race: the binary
# users run), a fixed pair of ports with traffic between them (ping every
# 0.2 s and iperf3 in 5 s bursts capped at 500 Mbit/s: at full rate the
# userspace datapath's one polling thread drops pings on a 2-core machine,
# which would measure OVS, not the daemon), and a loop attaching a port,
# pinging from it and detaching it again. Every SAMPLE_INTERVAL seconds the daemon's RSS
# (/proc/PID/status VmRSS), goroutines (/metrics go_goroutines) and open fds
# (/proc/PID/fd) go into a CSV. At the end it checks that nothing leaked: only
# the pair's vnet* links and OVS ports are left, the store holds the pair only,
# and addresses the churn used can be taken again. It prints the
# first and last samples and exits non-zero if a check fails.
#
# Root only. It touches nothing outside its own namespaces and directory, and
# stops only the processes it started (by PID), also on failure or Ctrl-C.
set -euo pipefail

DURATION=${1:-600}
INTERVAL=${2:-10}
[[ $DURATION =~ ^[0-9]+$ && $INTERVAL =~ ^[0-9]+$ && $INTERVAL -gt 0 ]] || {
	echo "usage: $0 [DURATION_SECONDS] [SAMPLE_INTERVAL_SECONDS]" >&2
	exit 2
}
[[ $(id -u) == 0 ]] || {
	echo "soak: must run as root (namespaces, OVS)" >&2
	exit 1
}

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/ovs-vnet-soak.XXXXXX)
TAG=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
HOST=vnt-soak-$TAG
NS_A=vnt-sa-$TAG
NS_B=vnt-sb-$TAG
CHURN_SLOTS=4 # namespaces reused by the churn loop, one port in each at a time
CSV=$WORK/soak.csv
SUBNET=10.77.0.0/24
A_IP=10.77.0.2
B_IP=10.77.0.3

PIDS=()       # every background process we started, stopped by PID at exit
NAMESPACES=() # every namespace we created, deleted at exit
DAEMON_PID=
FAILED=0

log() { echo "soak: $*" >&2; }
fail() {
	log "FAIL: $*"
	FAILED=1
}

cleanup() {
	local pid ns
	for pid in "${PIDS[@]}" $DAEMON_PID; do
		# The iperf3 loop's client is its child: by parent PID, not by name.
		pkill -P "$pid" 2>/dev/null || true
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}" $DAEMON_PID; do
		wait "$pid" 2>/dev/null || true
	done
	"$REPO/hack/ovs-sandbox.sh" down "$WORK/ovs" >/dev/null 2>&1 || log "sandbox down failed; see $WORK/ovs"
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	log "work directory (CSV, logs): $WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

newns() {
	ip netns add "$1"
	NAMESPACES+=("$1")
	ip -n "$1" link set lo up
}

# api METHOD PATH [BODY]: prints the body, returns 0 on 2xx.
api() {
	local out code body=()
	[[ $# -ge 3 ]] && body=(-H 'Content-Type: application/json' -d "$3")
	out=$(ip netns exec "$HOST" curl -sS -m 60 -X "$1" -w '\n%{http_code}' \
		"${body[@]}" "http://127.0.0.1:9476$2") || return 1
	code=${out##*$'\n'}
	printf '%s' "${out%$'\n'*}"
	[[ $code == 2* ]]
}

sample() {
	local now rss fds gor ports
	now=$(date +%s)
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status")
	fds=$(find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
	# A failed read is a gap in the CSV, not the end of the soak.
	gor=$(api GET /metrics | awk '$1 == "go_goroutines" {print $2}') || true
	ports=$(api GET /v1/ports | jq '.ports | length') || true
	echo "$now,$((now - START)),$rss,$gor,$fds,$ports,$CHURNS,$CHURN_ERRORS" >>"$CSV"
}

# --- set up ---------------------------------------------------------------
log "building the daemon"
(cd "$REPO" && go build -o "$WORK/ovs-vnet" ./cmd/ovs-vnet)
newns "$HOST"
"$REPO/hack/ovs-sandbox.sh" up "$WORK/ovs" --netns "$HOST" >/dev/null
ip netns exec "$HOST" "$WORK/ovs-vnet" --backend ovs --ovsdb "unix:$WORK/ovs/db.sock" \
	--bridge br-vnet --state-dir "$WORK/state" --log-level info >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$! # ip netns exec execs the daemon: this is its PID
for _ in $(seq 300); do
	api GET /readyz >/dev/null 2>&1 && break
	sleep 0.1
done
api GET /readyz >/dev/null || {
	log "daemon not ready; log:"
	tail -30 "$WORK/daemon.log" >&2
	exit 1
}

api PUT /v1/networks/soak "{\"subnet\":\"$SUBNET\"}" >/dev/null
newns "$NS_A"
newns "$NS_B"
api PUT /v1/ports/fa "{\"network\":\"soak\",\"netns\":\"$NS_A\",\"ip\":\"$A_IP\"}" >/dev/null
api PUT /v1/ports/fb "{\"network\":\"soak\",\"netns\":\"$NS_B\",\"ip\":\"$B_IP\"}" >/dev/null
for i in $(seq "$CHURN_SLOTS"); do newns "vnt-sc$i-$TAG"; done

# Traffic between the fixed pair for the whole run.
ip netns exec "$NS_A" ping -i 0.2 -n "$B_IP" >"$WORK/ping.log" 2>&1 &
PING_PID=$!
PIDS+=("$PING_PID")
ip netns exec "$NS_B" iperf3 -s -B "$B_IP" >"$WORK/iperf3-server.log" 2>&1 &
PIDS+=("$!")
(
	while :; do
		ip netns exec "$NS_A" iperf3 -c "$B_IP" -t 5 -b 500M -J 2>/dev/null |
			jq -r '.end.sum_received.bits_per_second // empty' >>"$WORK/iperf3.bps" || true
		sleep 5
	done
) &
PIDS+=("$!")

# --- churn ------------------------------------------------------------------
echo "unix_time,elapsed_s,rss_kb,goroutines,fds,ports,churns,churn_errors" >"$CSV"
START=$(date +%s)
CHURNS=0
CHURN_ERRORS=0
declare -A USED_IPS=()
NEXT_SAMPLE=$START
log "churning for ${DURATION}s, sampling every ${INTERVAL}s into $CSV"
while (($(date +%s) - START < DURATION)); do
	if (($(date +%s) >= NEXT_SAMPLE)); then
		sample
		NEXT_SAMPLE=$((NEXT_SAMPLE + INTERVAL))
	fi
	slot=$((CHURNS % CHURN_SLOTS + 1))
	name=churn$slot
	if out=$(api PUT "/v1/ports/$name" "{\"network\":\"soak\",\"netns\":\"vnt-sc$slot-$TAG\"}"); then
		ip=$(jq -r .ip <<<"$out")
		USED_IPS[${ip%/*}]=1
		# The port answers only once it forwards: pings at once, no warm-up.
		# From the new port, because the pool hands addresses out again and
		# a peer may still have the address's old MAC in its ARP cache (STALE
		# for a few seconds); the new port's ARP request replaces it. Three
		# tries, any answer counts: under the iperf3 bursts the userspace
		# datapath drops the odd packet (the fixed pair shows the same),
		# which says nothing about the attach; a port that does not forward
		# answers none.
		ip netns exec "vnt-sc$slot-$TAG" ping -c3 -i0.2 -W2 "$A_IP" >/dev/null || {
			log "churn $CHURNS: ping from $name (${ip%/*}) failed"
			CHURN_ERRORS=$((CHURN_ERRORS + 1))
		}
	else
		log "churn $CHURNS: attach $name failed: $out"
		CHURN_ERRORS=$((CHURN_ERRORS + 1))
	fi
	api DELETE "/v1/ports/$name" >/dev/null || {
		log "churn $CHURNS: detach $name failed"
		CHURN_ERRORS=$((CHURN_ERRORS + 1))
	}
	CHURNS=$((CHURNS + 1))
done
sample

# --- verdict ----------------------------------------------------------------
kill -INT "$PING_PID" 2>/dev/null || true
wait "$PING_PID" 2>/dev/null || true
PING_SUMMARY=$(grep 'packets transmitted' "$WORK/ping.log" || echo "no ping summary")

links=$(ip -n "$HOST" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep '^vnet' | sort | tr '\n' ' ')
nlinks=$(wc -w <<<"$links")
((nlinks == 2)) || fail "vnet* links left in the host namespace: $links (want the pair's 2)"
ovsports=$(ip netns exec "$HOST" ovs-vsctl --db="unix:$WORK/ovs/db.sock" list-ports br-vnet | tr '\n' ' ')
(($(wc -w <<<"$ovsports") == 2)) || fail "OVS ports on br-vnet: $ovsports (want the pair's 2)"
stored=$(api GET /v1/ports | jq -r '[.ports[].name] | sort | join(" ")')
[[ $stored == "fa fb" ]] || fail "ports in the store: $stored (want fa fb)"
for i in $(seq "$CHURN_SLOTS"); do
	left=$(ip -n "vnt-sc$i-$TAG" -o link show | grep -vc ': lo:' || true)
	((left == 0)) || fail "namespace vnt-sc$i-$TAG still has $left links"
done
# Every address the churn used went back to the pool: each can be taken again.
for ip in "${!USED_IPS[@]}"; do
	if api PUT /v1/ports/probe "{\"network\":\"soak\",\"netns\":\"vnt-sc1-$TAG\",\"ip\":\"$ip\"}" >/dev/null; then
		api DELETE /v1/ports/probe >/dev/null || fail "delete the probe port"
	else
		fail "address $ip is still taken after the soak"
	fi
done
echo "addresses used by the churn and free again: ${#USED_IPS[@]}"
((CHURN_ERRORS == 0)) || fail "$CHURN_ERRORS churn errors"

first=$(sed -n 2p "$CSV")
last=$(tail -n1 "$CSV")
field() { cut -d, -f"$2" <<<"$1"; }
echo
echo "soak: ${DURATION}s, $CHURNS attach/ping/detach cycles, $CHURN_ERRORS errors"
echo "fixed pair ping: $PING_SUMMARY"
if [[ -s $WORK/iperf3.bps ]]; then
	awk '{s += $1; n++} END {printf "fixed pair iperf3: %d bursts of 5 s, mean %.2f Gbit/s\n", n, s / n / 1e9}' "$WORK/iperf3.bps"
fi
printf '%-12s %10s %10s\n' "" first last
printf '%-12s %10s %10s\n' "RSS (kB)" "$(field "$first" 3)" "$(field "$last" 3)"
printf '%-12s %10s %10s\n' goroutines "$(field "$first" 4)" "$(field "$last" 4)"
printf '%-12s %10s %10s\n' "open fds" "$(field "$first" 5)" "$(field "$last" 5)"
echo "samples: $CSV"
# Flat means no steady climb: allow noise (a scrape or a request in flight),
# not growth proportional to the churn.
(($(field "$last" 4) <= $(field "$first" 4) + 10)) || fail "goroutines grew: $(field "$first" 4) -> $(field "$last" 4)"
(($(field "$last" 5) <= $(field "$first" 5) + 10)) || fail "open fds grew: $(field "$first" 5) -> $(field "$last" 5)"
if ((FAILED)); then
	echo "soak: FAILED"
	exit 1
fi
echo "soak: OK, nothing leaked"

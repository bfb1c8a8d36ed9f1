#!/usr/bin/env bash
# Checks of the container image and the systemd unit that need no Docker
# engine (CI has none):
#   1. the Dockerfile through two linters from npm: dockerfilelint (practice:
#      apt-get hygiene, image tags, sudo, ports) and dockerfile-utils (the
#      validator behind VS Code's Dockerfile support: unknown instructions and
#      flags, durations, duplicate stage names, relative WORKDIR); any finding
#      fails. With an engine at hand, BuildKit's own `docker build --check` too.
#   2. the Dockerfile's `go build` command, run here as written: it builds only
#      ./cmd/* packages, every binary it makes is copied into the image and
#      every binary copied is one it makes, and each is static (no ELF
#      interpreter), so it runs on a slim base and once copied onto any host.
#   3. `systemd-analyze verify` of the unit, on a copy whose ExecStart is the
#      binary just built (verify wants it to exist); any message fails. Its
#      `systemd-analyze security` exposure is printed, not judged.
#   4. the example /etc/default file names every flag of the daemon.
# Under CI=true or OVS_VNET_TEST_STRICT=1 (`make test`) a missing tool fails the
# run; elsewhere its checks are skipped with a message. DOCKERFILE, UNIT and DEFAULTS name other files to check
# (broken copies, to see that each check fails).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH

DOCKERFILE=${DOCKERFILE:-Dockerfile}
UNIT=${UNIT:-deploy/systemd/ovs-vnet.service}
DEFAULTS=${DEFAULTS:-deploy/systemd/ovs-vnet.default}
# Where the unit and docs/DEPLOY.md install the daemon.
readonly INSTALLED=/usr/local/bin/ovs-vnet

failed=0
fail() {
	echo "lint-deploy: FAIL: $*" >&2
	failed=1
}
# have TOOL WHAT: whether TOOL is there; its absence fails in strict mode and skips WHAT elsewhere.
have() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [[ ${CI:-} == true || ${OVS_VNET_TEST_STRICT:-} == 1 ]]; then
		fail "$1 is missing (needed for $2)"
	else
		echo "lint-deploy: SKIPPED $2: $1 is missing" >&2
	fi
	return 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The Dockerfile with continuation lines joined and comments dropped, one
# instruction a line.
instructions() {
	grep -v '^[[:space:]]*#' "$DOCKERFILE" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | tr -s ' \t' '  '
}

lint_dockerfile() {
	have npx "the Dockerfile linters" || return 0
	local out
	# Its exit status is the number of issues.
	if out=$(npx --yes --loglevel=error dockerfilelint@1.8.0 "$DOCKERFILE" 2>&1); then
		echo "lint-deploy: dockerfilelint: $DOCKERFILE clean"
	else
		fail "dockerfilelint on $DOCKERFILE:"$'\n'"$out"
	fi
	# It exits 0 on warnings: a clean file is one it prints nothing about.
	out=$(npx --yes --loglevel=error dockerfile-utils@0.16.3 lint "$DOCKERFILE" 2>&1) || out+=" (exit status $?)"
	if [[ -z $out ]]; then
		echo "lint-deploy: dockerfile-utils: $DOCKERFILE clean"
	else
		fail "dockerfile-utils on $DOCKERFILE:"$'\n'"$out"
	fi
}

# CI machines have the docker client but no engine; BuildKit's checks run where one answers.
buildkit_check() {
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		docker build --check -f "$DOCKERFILE" . || fail "docker build --check on $DOCKERFILE"
	else
		echo "lint-deploy: no Docker engine reachable (docker info fails): static lint only, BuildKit's checks (docker build --check) did not run"
	fi
}

# build_binaries runs the Dockerfile's go build into $tmp/out and checks what
# it builds against what the image copies. Its failures are recorded, not
# returned: the checks after it run as far as they can.
build_binaries() {
	have go "the Dockerfile's go build" || return 0
	local cmd outdir pkgs pkg bin copied bad=0
	cmd=$(instructions | grep -E '^RUN .*go build' || true)
	if [[ $(grep -c . <<<"$cmd") -ne 1 ]]; then
		fail "$DOCKERFILE: want exactly one RUN with go build, found: ${cmd:-none}"
		return 0
	fi
	cmd=$(sed -E 's/^RUN ((--[a-z]+=[^ ]+) )*//' <<<"$cmd")
	outdir=$(grep -oE -- '-o [^ ]+/( |$)' <<<"$cmd" | awk '{print $2}')
	if [[ -z $outdir ]]; then
		fail "$DOCKERFILE: go build needs -o DIR/ (one binary per package): $cmd"
		return 0
	fi
	mapfile -t pkgs < <(grep -oE '(^| )\./[^ ]+' <<<"$cmd" | tr -d ' ')
	for pkg in "${pkgs[@]}"; do
		[[ $pkg == ./cmd/* && -d $pkg ]] || { fail "$DOCKERFILE builds $pkg, which is no directory under ./cmd"; bad=1; }
	done
	[[ $bad -eq 0 ]] || return 0
	mkdir -p "$tmp/out"
	echo "lint-deploy: ${cmd//"$outdir"/"$tmp/out/"}"
	if ! sh -c "${cmd//"$outdir"/"$tmp/out/"}"; then
		fail "the Dockerfile's go build failed"
		return 0
	fi
	# What the image copies from the stage that runs go build.
	copied=$(instructions | awk -v dir="$outdir" '
		toupper($1) == "FROM" { stage = (toupper($(NF-1)) == "AS") ? $NF : "" }
		toupper($1) == "RUN" && / go build / { built = stage }
		toupper($1) == "COPY" && built != "" && $2 == "--from=" built {
			for (i = 3; i < NF; i++) { src = $i; sub("^" dir, "", src); print src }
		}')
	for bin in $copied; do
		[[ -e $tmp/out/$bin ]] || fail "$DOCKERFILE copies $outdir$bin, which go build does not make (./cmd/$bin?)"
	done
	for pkg in "${pkgs[@]}"; do
		grep -qxF "${pkg##*/}" <<<"$copied" || fail "$DOCKERFILE builds $pkg but copies no ${pkg##*/} into the image"
	done
	if have readelf "the static-binary check"; then
		for bin in "$tmp"/out/*; do
			if ! readelf -lW "$bin" >"$tmp/elf" 2>&1; then
				fail "${bin##*/} is no ELF file: $(head -1 "$tmp/elf")"
			elif grep -q 'INTERP' "$tmp/elf"; then
				fail "${bin##*/} is dynamically linked ($(grep -o 'interpreter: [^]]*' "$tmp/elf")): CGO_ENABLED=0 missing?"
			else
				echo "lint-deploy: ${bin##*/}: static ELF, $(stat -c %s "$bin") bytes"
			fi
		done
	fi
}

check_unit() {
	have systemd-analyze "the systemd unit checks" || return 0
	# verify wants ExecStart to exist; a failed build has been reported already.
	[[ -x $tmp/out/ovs-vnet ]] || { echo "lint-deploy: the unit checks did not run: ovs-vnet was not built (above)" >&2; return 0; }
	if ! grep -qxF "ExecStart=$INSTALLED" "$UNIT"; then
		fail "$UNIT: want ExecStart=$INSTALLED, where docs/DEPLOY.md installs the daemon"
		return 0
	fi
	local copy=$tmp/${UNIT##*/} out
	sed "s|^ExecStart=$INSTALLED|ExecStart=$tmp/out/ovs-vnet|" "$UNIT" >"$copy"
	# verify exits 0 on unknown keys and unparsable values, printing them only.
	out=$(systemd-analyze verify "$copy" 2>&1) || out=${out:-"exit status $?"}
	if [[ -n $out ]]; then
		fail "systemd-analyze verify $UNIT:"$'\n'"$out"
	else
		echo "lint-deploy: systemd-analyze verify $UNIT: clean"
	fi
	# The one misspelling verify lets through: systemd drops an unknown
	# capability name without a word, and the daemon then lacks it.
	local known caps cap
	known=$(systemd-analyze capability | awk 'NR > 1 { print toupper($1) }')
	caps=$(sed -nE 's/^(CapabilityBoundingSet|AmbientCapabilities)=~?//p' "$UNIT")
	for cap in $caps; do
		grep -qxF "$cap" <<<"$known" || fail "$UNIT: $cap is no capability systemd knows; it would be dropped silently"
	done
	systemd-analyze security --offline=yes "$copy" 2>&1 | grep -F 'Overall exposure level' | sed 's/^→ */lint-deploy: systemd-analyze security: /' ||
		fail "systemd-analyze security --offline=yes $UNIT printed no exposure level"
}

check_defaults() {
	local flags flag missing=0
	mapfile -t flags < <("$tmp/out/ovs-vnet" -h 2>&1 | grep -oE '^  -[a-z0-9-]+' | sed 's/^  -//')
	[[ ${#flags[@]} -gt 0 ]] || fail "ovs-vnet -h listed no flags"
	for flag in "${flags[@]}"; do
		flag=OVS_VNET_$(tr 'a-z-' 'A-Z_' <<<"$flag")
		grep -qE "^#?$flag=" "$DEFAULTS" || { fail "$DEFAULTS lacks $flag"; missing=1; }
	done
	[[ $missing -ne 0 ]] || echo "lint-deploy: $DEFAULTS names all ${#flags[@]} flags of the daemon"
}

lint_dockerfile
buildkit_check
build_binaries
check_unit
[[ ! -x $tmp/out/ovs-vnet ]] || check_defaults
exit "$failed"

# ovs-vnet — two set-up commands: `make run` and `make test` (as root).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:/usr/sbin:/sbin:$(PATH)

BIN      := bin/ovs-vnet
RUN_DIR  := $(CURDIR)/.run
LISTEN   ?= 127.0.0.1:9476
# An execution count, not a duration: a duration races the fuzz coordinator's
# deadline on a loaded machine and fails with "context deadline exceeded"
# (golang/go#75804, fixed only in Go 1.27).
FUZZTIME ?= 100000x
# The compiler's targets build a whole pipeline per execution (1–2 ms here,
# where a parser's target takes microseconds): a fifth of the count keeps
# them near a minute together instead of five of CI's twenty.
FUZZTIME_COMPILE ?= 20000x

BENCH_DIR   := $(RUN_DIR)/bench
# Ports of the scale benchmarks (`make bench PORTS=200` for a quicker look).
PORTS       ?= 1000

.PHONY: all deps build run stop test fuzz lint bench bench-smoke generate clean

all: build

deps:
	@hack/install-deps.sh

build:
	go build -buildvcs=auto -o $(BIN) ./cmd/ovs-vnet
	go build -buildvcs=auto -o bin/ovs-vnet-cni ./cmd/ovs-vnet-cni
	go build -buildvcs=auto -o bin/vnetctl ./cmd/vnetctl

# Starts a sandboxed OVS under .run/ovs and the daemon in the foreground (Ctrl-C
# stops the daemon; `make stop` also stops the sandbox and removes its bridge).
run: deps build
	@hack/ovs-sandbox.sh up $(RUN_DIR)/ovs
	@hack/run-banner.sh $(LISTEN)
	$(BIN) --backend ovs --ovsdb unix:$(RUN_DIR)/ovs/db.sock --state-dir $(RUN_DIR)/state --listen $(LISTEN)

stop:
	@hack/ovs-sandbox.sh down $(RUN_DIR)/ovs

# What CI runs (.ci/run): prerequisites, static checks, all tests with the race
# detector (unit and end-to-end against real OVS, namespaces and packets), and
# bounded fuzzing. Strict: a missing prerequisite fails a test instead of
# skipping it (internal/testbed.Need), here and in every target test runs.
# The e2e package runs its tests one after another, some 16 minutes on an
# idle 2-core machine and over 20 on a loaded one: the timeout is the
# package's bound against a hang, not a speed target (`make bench` is).
test: export OVS_VNET_TEST_STRICT := 1
test: deps lint
	go test -race -count=1 -timeout 45m ./...
	$(MAKE) fuzz
	$(MAKE) bench-smoke

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	bash -n hack/*.sh .ci/run
	hack/lint-docs.sh
	hack/lint-deploy.sh

fuzz:
	go test -run '^$$' -fuzz '^FuzzNetworkSpec$$' -fuzztime $(FUZZTIME) ./model
	go test -run '^$$' -fuzz '^FuzzPortSpec$$' -fuzztime $(FUZZTIME) ./model
	go test -run '^$$' -fuzz '^FuzzSecurityGroupSpec$$' -fuzztime $(FUZZTIME) ./model
	go test -run '^$$' -fuzz '^FuzzGroupList$$' -fuzztime $(FUZZTIME) ./model
	go test -run '^$$' -fuzz '^FuzzNetworkDHCP$$' -fuzztime $(FUZZTIME) ./model
	go test -run '^$$' -fuzz '^FuzzFloatingIPSpec$$' -fuzztime $(FUZZTIME) ./model
	go test -run '^$$' -fuzz '^FuzzPortForwardSpec$$' -fuzztime $(FUZZTIME) ./model
	go test -run '^$$' -fuzz '^FuzzPool$$' -fuzztime $(FUZZTIME) ./controller/ipam
	go test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./httpapi
	go test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./httpapi/jsonkeys
	go test -run '^$$' -fuzz '^FuzzUnmarshal$$' -fuzztime $(FUZZTIME) ./flows/openflow
	go test -run '^$$' -fuzz '^FuzzActions$$' -fuzztime $(FUZZTIME) ./flows/openflow
	go test -run '^$$' -fuzz '^FuzzInstructions$$' -fuzztime $(FUZZTIME) ./flows/openflow
	go test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME_COMPILE) ./flows/pipeline
	go test -run '^$$' -fuzz '^FuzzPolicyCompile$$' -fuzztime $(FUZZTIME_COMPILE) ./flows/pipeline
	go test -run '^$$' -fuzz '^FuzzFragNeeded$$' -fuzztime $(FUZZTIME) ./flows/pmtu
	go test -run '^$$' -fuzz '^FuzzAnswer$$' -fuzztime $(FUZZTIME) ./dhcp

# The performance suite (issue 7, docs/BENCHMARKS.md): every figure beside its
# baseline from the same run — attach one after another per tenth of PORTS
# ports vs the by-hand scripts, PORTS ports with 16 clients, RSS and restart at
# that size, 100k flows vs ovs-ofctl --bundle, /metrics with PORTS ports,
# iperf3 vs OVS NORMAL and a plain bridge. Results go to .run/bench, and
# hack/benchreport writes docs/BENCHMARKS.md and docs/bench/*.svg from them.
# About 25 minutes on 2 cores at PORTS=1000.
bench: deps
	@mkdir -p $(BENCH_DIR)
	set -o pipefail; go test -run '^$$' -bench . -benchtime 1x -timeout 120m ./e2e/ -args -ports=$(PORTS) | tee $(BENCH_DIR)/e2e.txt
	set -o pipefail; go test -run '^$$' -bench . -benchtime 3x -timeout 30m ./flows/reconcile/ | tee $(BENCH_DIR)/flows.txt
	set -o pipefail; go test -run '^$$' -bench . -benchmem ./flows/openflow/ ./exporter/ | tee $(BENCH_DIR)/units.txt
	go run ./hack/benchreport -out docs -analysis hack/benchreport/analysis.md $(BENCH_DIR)/e2e.txt $(BENCH_DIR)/flows.txt $(BENCH_DIR)/units.txt

# The suite at a few ports, as part of `make test`: every scenario and the
# report generator run; no figure is judged.
bench-smoke:
	@mkdir -p $(BENCH_DIR)/smoke
	set -o pipefail; go test -run '^$$' -bench . -benchtime 1x -timeout 20m ./e2e/ -args -ports=8 -clients=4 -iperf-seconds=1 | tee $(BENCH_DIR)/smoke/e2e.txt
	set -o pipefail; go test -run '^$$' -bench . -benchtime 1x -timeout 10m ./flows/reconcile/ -args -flows=100,1000 | tee $(BENCH_DIR)/smoke/flows.txt
	go run ./hack/benchreport -out $(BENCH_DIR)/smoke -analysis hack/benchreport/analysis.md $(BENCH_DIR)/smoke/e2e.txt $(BENCH_DIR)/smoke/flows.txt

generate:
	go generate ./...

clean:
	rm -rf bin

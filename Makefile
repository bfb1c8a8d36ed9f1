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

.PHONY: all deps build run stop test fuzz lint bench generate clean

all: build

deps:
	@hack/install-deps.sh

build:
	go build -buildvcs=auto -o $(BIN) ./cmd/ovs-vnet

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
# bounded fuzzing.
test: deps lint
	go test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	bash -n hack/*.sh .ci/run

fuzz:
	go test -run '^$$' -fuzz '^FuzzNetworkSpec$$' -fuzztime $(FUZZTIME) ./model
	go test -run '^$$' -fuzz '^FuzzPortSpec$$' -fuzztime $(FUZZTIME) ./model
	go test -run '^$$' -fuzz '^FuzzPool$$' -fuzztime $(FUZZTIME) ./controller/ipam
	go test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./controller
	go test -run '^$$' -fuzz '^FuzzUnmarshal$$' -fuzztime $(FUZZTIME) ./flows/openflow
	go test -run '^$$' -fuzz '^FuzzActions$$' -fuzztime $(FUZZTIME) ./flows/openflow
	go test -run '^$$' -fuzz '^FuzzInstructions$$' -fuzztime $(FUZZTIME) ./flows/openflow
	go test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME) ./flows/pipeline

# Each benchmark runs beside its baseline in the same run (DESIGN.md §7):
# iperf3 through the pipeline vs OVS NORMAL and vs a plain Linux bridge
# (BenchmarkThroughput: x-normal, x-bridge ≥ 0.95), attach p99 with 500 ports
# vs 10 on both backends and the by-hand ip + ovs-vsctl sequence
# (BenchmarkAttach: x-p99-small ≤ 1.5), 100k flows vs ovs-ofctl --bundle.
# -benchtime 1x: one iteration already takes its samples (3 × 5 s iperf3 runs
# per side, 50 attaches); Throughput and Attach take about 2.5 minutes on 2 cores.
bench: deps
	go test -run '^$$' -bench . -benchtime 1x -timeout 30m ./e2e/
	go test -run '^$$' -bench . -benchtime 3x -timeout 30m ./flows/reconcile/
	go test -run '^$$' -bench . -benchmem ./flows/openflow/

generate:
	go generate ./...

clean:
	rm -rf bin

# Accord: two commands matter. `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := run

.PHONY: run test deps build build-release unit integration conformance conformance-postgres chaos chaos-short cluster cluster-down cluster-chaos cluster-chaos-short cluster-scenarios recipes bench bench-scale format lint clean

deps:
	@deploy/install-deps.sh

## Build in release mode and start a local deployment (Ctrl-C stops it).
run: deps build-release
	@ACCORD_BIN=.build/release deploy/local/accord-local

## The Swift runtime linked statically: a process (every runner) starts in half the time.
build-release:
	@deploy/install-deps.sh --release
	swift build -c release --static-swift-stdlib

build:
	swift build --build-tests

## Every test: unit and integration (real binaries, real sockets), then the shared conformance
## suite against a freshly started deployment.
test: deps
	@deploy/install-deps.sh --test
	$(MAKE) --no-print-directory lint
	swift build --build-tests
	deploy/test/with-postgres $(MAKE) --no-print-directory unit integration conformance conformance-postgres chaos-short
	$(MAKE) --no-print-directory recipes cluster-scenarios cluster-chaos-short

## Tests of the PostgreSQL log need a server: one is started unless ACCORD_TEST_DATABASE_URL names one.
WITH_POSTGRES := $(if $(ACCORD_TEST_DATABASE_URL),,deploy/test/with-postgres)

## The pure parts and each service in process (no binaries started).
unit:
	$(WITH_POSTGRES) swift test --skip-build --skip IntegrationTests

## The real binaries (.build/debug) over real sockets.
integration:
	$(WITH_POSTGRES) swift test --skip-build --filter IntegrationTests

conformance:
	@ACCORD_BIN=.build/debug deploy/test/conformance.sh

## The same suites against a deployment whose Scheduler keeps its log in PostgreSQL (a server of its own).
conformance-postgres:
	@deploy/test/with-postgres sh -c 'ACCORD_DATABASE_URL="$$ACCORD_TEST_DATABASE_URL" ACCORD_BIN=.build/debug deploy/test/conformance.sh'

## Two executors under mixed load, a random component SIGKILLed every few seconds, for 5 minutes;
## then checks that every acknowledged start is one terminal instance and the event log verifies.
chaos: deps build
	python3 deploy/test/chaos.py --duration $${CHAOS_SECONDS:-300}

chaos-short:
	python3 deploy/test/chaos.py --duration 30 --drain 90

## The multi-host rehearsal (root): PostgreSQL, two Schedulers, two Gateways, two executors, each
## host a network namespace of its own, mutual TLS between them. Prints the URLs and the key;
## `deploy/cluster/accord-cluster status|leader|endpoints|kill|start|partition|heal|down`.
cluster: deps build-release
	@deploy/install-deps.sh --test
	deploy/cluster/accord-cluster up

cluster-down:
	deploy/cluster/accord-cluster down

## The rehearsal under the mixed load through both Gateways while it loses its leading Scheduler,
## a Gateway, an executor host, and an executor's link, one after another, for 5 minutes.
cluster-chaos: deps build
	@deploy/install-deps.sh --test
	python3 deploy/test/cluster_chaos.py --duration $${CHAOS_SECONDS:-300}

## The deployment recipes (systemd, container, Kubernetes) against the binaries' flags and the rehearsal's.
recipes:
	ACCORD_BIN=.build/debug python3 -m pytest -q deploy/test/recipes_test.py

## Failures across hosts one at a time in the rehearsal (a leader cut off, dead, healed, leading again).
cluster-scenarios:
	python3 deploy/test/cluster_scenarios.py

cluster-chaos-short:
	python3 deploy/test/cluster_chaos.py --duration 60 --drain 90

## Release build; every figure of docs/BENCHMARKS.md on the file log and on PostgreSQL (a throwaway
## local server, fsync on), side by side, and failover over 10 kills in the multi-host rehearsal
## (bounded; stops what it starts).
bench: deps build-release
	@deploy/install-deps.sh --test
	python3 bench/bench.py

## Release build; the figures of a small and a large history of finished instances side by side
## (docs/BENCHMARKS.md, "Cost against history"). BENCH_SCALE_SIZES picks the sizes.
BENCH_SCALE_SIZES ?= 100000,10000000
bench-scale: deps build-release
	python3 bench/scale.py --sizes $(BENCH_SCALE_SIZES)

format:
	swift format --in-place --recursive Sources Tests Plugins Package.swift

lint:
	swift format lint --strict --recursive Sources Tests Plugins Package.swift

clean:
	rm -rf .build

# usersd: build, test and lint targets. `make help` lists them.
#
# Every recipe runs in bash with -e and -o pipefail, so a failing command
# fails the target even when its output goes through a pipe (tee, the test
# summary).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# Go lives in /usr/local/go on our machines; an earlier go on PATH wins.
export PATH := $(PATH):/usr/local/go/bin

GO    ?= go
GOFMT ?= gofmt

BIN     := bin/usersd
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# make test GOTESTFLAGS='-run TestInvite' narrows a run; the defaults stay.
GOTESTFLAGS ?=
TEST_TIMEOUT ?= 30m

BENCHTIME    ?= 3s
BENCH        ?= .
BENCH_TIMEOUT ?= 60m
BENCH_OUT    := docs/bench-latest.txt

# make fuzz runs every fuzz target for FUZZTIME each; FUZZ narrows them by
# name (a regular expression), FUZZ_PKGS by package.
FUZZTIME     ?= 30s
FUZZ         ?= .
FUZZ_PKGS    ?= ./...
FUZZ_TIMEOUT ?= 30m

# Arguments for `make run` (e.g. make run ARGS='migrate -h').
ARGS ?= serve

.PHONY: all build run test fuzz lint fmt vet lint-imports bench scale migrate clean help

all: lint test build ## lint, test and build

build: ## build bin/usersd
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/usersd

# Without DATABASE_URL, serve runs on the embedded default: the PostgreSQL at
# 127.0.0.1:5432 if one answers, else a private cluster under ./.data (kept
# between runs); it prints the link that opens the web UI as the demo Admin.
run: build ## build, then run bin/usersd $(ARGS) (default: serve, on the embedded default)
	./$(BIN) $(ARGS)

migrate: build ## apply the database migrations (DATABASE_URL or the local default)
	./$(BIN) migrate

# Integration tests need PostgreSQL: USERSD_TEST_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) must let them
# create databases. The summary prints each package's result, the output of
# failed tests only, and closes with "tests: N passed, N failed, N skipped".
test: ## run all tests with the race detector (needs PostgreSQL)
	@mkdir -p bin
	$(GO) build -o bin/testsummary ./.ci/testsummary
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -json $(GOTESTFLAGS) ./... 2>&1 \
		| bin/testsummary

# Fuzzing: go test -fuzz takes one target per run, so each target found by
# `go test -list '^Fuzz'` (a new one is picked up by itself) runs alone for
# FUZZTIME, one after another; every target runs even when one fails, and
# the run fails if any did. A failing input is written to the package's
# testdata/fuzz/<target>/, where `go test` (and so CI) runs it from then on,
# with the committed seeds. Targets in adapters/httpapi need PostgreSQL, as
# the tests do.
fuzz: ## run each fuzz target for $(FUZZTIME), one at a time (FUZZ=regexp narrows them)
	@targets=$$($(GO) test -list '^Fuzz' $(FUZZ_PKGS) \
		| awk '/^Fuzz/ { names[++n] = $$1; next } /^ok/ { for (i = 1; i <= n; i++) print $$2, names[i]; n = 0 }' \
		| awk -v re='$(FUZZ)' '$$2 ~ re'); \
	if [ -z "$$targets" ]; then echo 'no fuzz target matches FUZZ=$(FUZZ)'; exit 1; fi; \
	echo "fuzz targets ($(FUZZTIME) each):"; echo "$$targets" | sed 's/^/  /'; \
	failed=(); \
	while read -r pkg name; do \
		echo "--- $$name ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -timeout $(FUZZ_TIMEOUT) "$$pkg" < /dev/null \
			|| failed+=("$$name ($$pkg)"); \
	done <<< "$$targets"; \
	if [ $${#failed[@]} -gt 0 ]; then printf 'fuzz: FAILED %s\n' "$${failed[@]}"; exit 1; fi; \
	echo "fuzz: every target ran $(FUZZTIME) without a finding"

lint: fmt vet lint-imports ## gofmt, go vet and the import rules

fmt: ## fail if any Go file is not gofmt-formatted
	@echo '--- gofmt -l'
	@files=$$($(GOFMT) -l $$(find . -name '*.go' -not -path './.git/*' -not -path './bin/*')); \
	if [ -n "$$files" ]; then \
		echo 'these files need gofmt (run: gofmt -w <file>):'; echo "$$files"; exit 1; \
	fi

vet: ## go vet the module and the CI helpers
	@echo '--- go vet'
	$(GO) vet ./... ./.ci/testsummary

lint-imports: ## check the import rules of the style guide (go list -deps)
	@echo '--- import rules'
	bash .ci/lint-imports.sh

# Benchmarks need PostgreSQL too (each gets fresh databases from pgtest), and
# npm for Message DB's SQL (fetched into .cache/; without npm those sides are
# skipped). One package at a time (-p 1), so that no two benchmarks share the
# machine. The raw output goes to $(BENCH_OUT), and .ci/benchreport turns it
# into $(BENCH_REPORT): every workload beside its baseline, goals met or
# missed, and the machine. A failed run still writes both (the report lists
# the failures), then fails. USERSD_BENCH_EVENTS=50000 shrinks the rebuild's
# million events for a quick run.
BENCH_REPORT := docs/benchmarks.md

bench: ## run every benchmark (-benchtime $(BENCHTIME)); write docs/bench-latest.txt and docs/benchmarks.md
	@mkdir -p $(dir $(BENCH_OUT)) bin
	$(GO) build -o bin/benchreport ./.ci/benchreport
	@load="$$(cat /proc/loadavg 2>/dev/null || true)"; start=$$(date +%s); status=0; \
	$(GO) test -p 1 -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem -count=1 \
		-timeout $(BENCH_TIMEOUT) ./... 2>&1 | tee $(BENCH_OUT).tmp || status=$$?; \
	mv $(BENCH_OUT).tmp $(BENCH_OUT); \
	bin/benchreport -in $(BENCH_OUT) -out $(BENCH_REPORT) -benchtime $(BENCHTIME) \
		-load-before "$$load" -elapsed $$(( $$(date +%s) - start ))s; \
	echo "wrote $(BENCH_OUT) and $(BENCH_REPORT)"; exit $$status

# The measurements behind docs/scaling.md (not part of make test or make
# bench). First TestOperationCosts in cmd/usersd: usersd serve on a fresh
# database, SCALE_COSTS invitations, acceptances, role changes and logins
# over HTTP, each phase's transactions, rows and WAL bytes (pg_walinspect)
# and CPU per operation (the COST lines; under a minute). Then TestScale
# in projections/benchmarks seeds a history of
# SCALE_EVENTS real encoded events (COPY) over one workspace per 500 events
# of very different sizes (USERSD_SCALE_WORKSPACES overrides), then
# measures reading it, each read model's rebuild (time and peak memory),
# the tables' and indexes' sizes and the queries' latencies; the SCALE lines
# of the output are the figures. It needs the test PostgreSQL server and
# disk for the history: ~1.5 GB per million events with the read models.
# About 15 minutes at 1,000,000 on 2 shared cores, over 2 hours at 10,000,000.
SCALE_COSTS   ?= 500
SCALE_EVENTS  ?= 1000000
SCALE_TIMEOUT ?= 4h
SCALE_OUT     := bin/scale-latest.txt

scale: ## per-operation costs, then a simulated history of $(SCALE_EVENTS) events: rebuilds, sizes, queries (docs/scaling.md)
	@mkdir -p $(dir $(SCALE_OUT))
	USERSD_SCALE_COSTS=$(SCALE_COSTS) $(GO) test -run '^TestOperationCosts$$' -v -count=1 -timeout 15m \
		./cmd/usersd/ 2>&1 | tee $(SCALE_OUT)
	USERSD_SCALE_EVENTS=$(SCALE_EVENTS) $(GO) test -run '^TestScale$$' -v -count=1 -timeout $(SCALE_TIMEOUT) \
		./projections/benchmarks/ 2>&1 | tee -a $(SCALE_OUT)
	@echo "figures: grep -E 'COST|SCALE' $(SCALE_OUT)"

clean: ## remove build output
	rm -rf bin/ $(BENCH_OUT).tmp
	$(GO) clean -testcache

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 16

# koji-mcp — everything a fresh machine with python3, make and git needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv demo demo-app test test-postgres browser package sandbox serve bench bench-batch bench-startup bench-calls bench-memory bench-replicas conformance load clean

help:
	@echo "make demo     run a full interview through a real MCP client on the local sandbox"
	@echo "make demo-app answer an interview yourself in the MCP App view, in a local host page (koji-mcp demo --app)"
	@echo "make test     run the test suite"
	@echo "make test-postgres  run the PostgreSQL tests on a throwaway cluster (installs Debian's postgresql when no initdb)"
	@echo "make browser  drive the OAuth consent page and the interview view in headless Chromium (installs chromium + playwright-core)"
	@echo "make package  build the sdist and wheel, install the wheel in a fresh venv and run it (slow)"
	@echo "make sandbox  run the local Koji sandbox on http://127.0.0.1:8787"
	@echo "make serve    run koji-mcp over streamable HTTP on the in-process sandbox"
	@echo "make bench    run the benchmarks (bench/) and append to bench/RESULTS.md"
	@echo "make bench-replicas  the ledger on PostgreSQL vs SQLite (ms per call), then 1 vs 2 replicas on one database (throwaway cluster)"
	@echo "make conformance  run the MCP conformance suite against koji-mcp over streamable HTTP"
	@echo "make load     koji-mcp vs a thin forwarder over HTTP (calls/s), then a 50-client leak check"
	@echo "make clean    remove the virtualenv and caches"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,postgres]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/koji-mcp demo

demo-app: $(STAMP)
	$(BIN)/koji-mcp demo --app

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Debian's PostgreSQL server binaries (apt, as root or via sudo) when no initdb is on PATH or in
# /usr/lib/postgresql/*/bin: test-postgres and bench-replicas start throwaway clusters with them.
define ENSURE_INITDB
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		echo "no initdb found: installing Debian's postgresql (server binaries)"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; \
	fi
endef

# The tests marked `postgres` (the ledger module and every test on the `settings` fixture with the ledger on
# PostgreSQL, shared pacing, OAuth and two-replica end-to-end tests, the harness itself) on a throwaway cluster that
# tests/pgcluster.py starts with initdb + pg_ctl (as the postgres user when root). Installs Debian's
# PostgreSQL server (apt, as root or via sudo) only when no initdb is on PATH or in /usr/lib/postgresql/*/bin;
# a cluster that cannot start fails the run, never skips.
test-postgres: $(STAMP)
	$(ENSURE_INITDB)
	KOJI_MCP_TEST_POSTGRES=1 $(BIN)/python -m pytest -q -m postgres

# The consent page and the interview view (MCP App) in real headless Chromium. Installs Debian's chromium
# (apt, as root or via sudo), playwright-core and the official MCP Apps host bridge with its MCP client
# (npm, into .tools/browser; test-only, never needed to install or run koji-mcp) when missing; the tests
# fail, never skip, without them.
CHROMIUM        ?= /usr/bin/chromium
PLAYWRIGHT_CORE := .tools/browser/node_modules/playwright-core/package.json
EXT_APPS        := .tools/browser/node_modules/@modelcontextprotocol/ext-apps/package.json

$(PLAYWRIGHT_CORE):
	mkdir -p .tools/browser
	cd .tools/browser && (test -f package.json || npm init -y >/dev/null) && \
		npm install --no-audit --no-fund --loglevel=error playwright-core@1.65.1

$(EXT_APPS): $(PLAYWRIGHT_CORE)
	cd .tools/browser && npm install --no-audit --no-fund --loglevel=error --legacy-peer-deps \
		@modelcontextprotocol/ext-apps@2.0.4 @modelcontextprotocol/client@2.4.0 @modelcontextprotocol/core@2.4.0 zod@4.6.7

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium

browser: $(STAMP) $(PLAYWRIGHT_CORE) $(EXT_APPS) $(CHROMIUM)
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q -m browser tests/browser

package: $(STAMP)
	KOJI_MCP_PACKAGE_TEST=1 $(BIN)/python -m pytest -q tests/package

sandbox: $(STAMP)
	$(BIN)/koji-mcp sandbox

serve: $(STAMP)
	$(BIN)/koji-mcp serve --sandbox --transport streamable-http

# -k: every benchmark runs and reports even when an earlier one misses its goal (exit 1)
bench:
	$(MAKE) -k bench-startup bench-calls bench-memory bench-batch bench-replicas

bench-startup: $(STAMP)
	$(BIN)/python bench/startup.py --write

bench-calls: $(STAMP)
	$(BIN)/python bench/calls.py --write

bench-memory: $(STAMP)
	$(BIN)/python bench/memory.py --write

bench-batch: $(STAMP)
	$(BIN)/python bench/batch.py --write

# The ledger on PostgreSQL (a throwaway cluster, tests/pgcluster.py; installs Debian's postgresql when no
# initdb, as test-postgres does): ms per call beside SQLite, then 1 vs 2 stateless replicas on one database.
bench-replicas: $(STAMP)
	$(ENSURE_INITDB)
	$(BIN)/python bench/replicas.py --write

conformance: $(STAMP)
	bash bench/conformance.sh

load: $(STAMP)
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info

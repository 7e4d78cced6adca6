# koji-mcp — everything a fresh machine with python3, make and git needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv demo test sandbox serve bench bench-batch bench-startup bench-calls bench-memory conformance load clean

help:
	@echo "make demo     run a full interview through a real MCP client on the local sandbox"
	@echo "make test     run the test suite"
	@echo "make sandbox  run the local Koji sandbox on http://127.0.0.1:8787"
	@echo "make serve    run koji-mcp over streamable HTTP on the in-process sandbox"
	@echo "make bench    run the benchmarks (bench/) and append to bench/RESULTS.md"
	@echo "make conformance  run the MCP conformance suite against koji-mcp over streamable HTTP"
	@echo "make load     koji-mcp vs a thin forwarder over HTTP (calls/s), then a 50-client leak check"
	@echo "make clean    remove the virtualenv and caches"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/koji-mcp demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

sandbox: $(STAMP)
	$(BIN)/koji-mcp sandbox

serve: $(STAMP)
	$(BIN)/koji-mcp serve --sandbox --transport streamable-http

# -k: every benchmark runs and reports even when an earlier one misses its goal (exit 1)
bench:
	$(MAKE) -k bench-startup bench-calls bench-memory bench-batch

bench-startup: $(STAMP)
	$(BIN)/python bench/startup.py --write

bench-calls: $(STAMP)
	$(BIN)/python bench/calls.py --write

bench-memory: $(STAMP)
	$(BIN)/python bench/memory.py --write

bench-batch: $(STAMP)
	$(BIN)/python bench/batch.py --write

conformance: $(STAMP)
	bash bench/conformance.sh

load: $(STAMP)
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info

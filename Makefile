# celeriac: `make demo` shows it working, `make test` checks it. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck imports check bench chaos chaos-short clean bytecode

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# celeriac's byte code, written once as pip does for a wheel: an editable install has none, and
# where PYTHONDONTWRITEBYTECODE is set no process writes it, so every worker, CLI call and test
# subprocess compiled every module again (200 ms a start). Only changed files are compiled again.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q src

demo: $(STAMP) bytecode
	$(BIN)/python examples/demo.py

test: $(STAMP) bytecode
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples chaos
	$(BIN)/ruff format --check src tests benchmarks examples chaos

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

check: lint typecheck imports test

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

# The asyncio suite's peers pin an older redis-py than celeriac's: a virtualenv of their own.
PEERS_VENV := .venv-peers
$(PEERS_VENV)/.installed:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet arq==0.28.0 saq==0.26.4 taskiq==0.11.20 \
		taskiq-redis==1.0.9 'redis[hiredis]==5.3.1'
	touch $@

bench: $(VENV)/.bench-installed $(PEERS_VENV)/.installed
	BENCH_PEERS_PYTHON=$(PEERS_VENV)/bin/python $(BIN)/python -m benchmarks

# The fault suite (docs/design/faults.md): minutes, so not part of `make test`. Both brokers;
# Redis is a throw-away redis-server from this machine (without one, it stops at once and says
# how to get one). CHAOS_ARGS picks scenarios or a broker,
# or your own Redis (the faults that kill or freeze the server are then skipped):
#   make chaos CHAOS_ARGS="worker-kills poison --redis-url redis://host:6379/0"
CHAOS_ARGS ?=

chaos: $(STAMP) bytecode
	$(BIN)/python -m chaos $(CHAOS_ARGS)

chaos-short: $(STAMP) bytecode
	$(BIN)/python -m chaos --short $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# banquet — `make help` lists the targets. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip
export CARGO_TARGET_DIR ?= $(HOME)/.cache/banquet/target
export PIP_DISABLE_PIP_VERSION_CHECK := 1
HOST_PY   ?= python3
EXT_STAMP := $(VENV)/.ext-stamp
RUST_SRC  := $(shell find rust -name '*.rs' -o -name Cargo.toml) Cargo.toml pyproject.toml

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.deps-stamp: requirements-dev.txt
	@test -x $(PY) || $(HOST_PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	@touch $@

$(EXT_STAMP): $(VENV)/.deps-stamp $(RUST_SRC)
	$(VENV)/bin/maturin develop --release --quiet
	@touch $@

# banquet-feast (compat/feast): `import feast` and the `feast` command, editable (pure Python)
FEAST_STAMP := $(VENV)/.feast-stamp
$(FEAST_STAMP): $(VENV)/.deps-stamp compat/feast/pyproject.toml compat/feast/_build/banquet_feast_backend.py
	$(PIP) install -q --no-deps --no-index -e compat/feast
	@touch $@

.PHONY: venv develop
venv: $(VENV)/.deps-stamp ## create .venv with the Python dependencies
develop: $(EXT_STAMP) $(FEAST_STAMP) ## build the Rust extension (release) and banquet-feast into .venv

.PHONY: services services-stop
services: $(VENV)/.deps-stamp ## install (if missing) and start local Postgres, Redis, a 3-node Redis Cluster and an S3 server (moto) on loopback, a Kafka broker (Tansu)
	@BANQUET_PYTHON=$(abspath $(PY)) scripts/services.sh start
services-stop: ## stop the servers `make services` started
	@scripts/services.sh stop

.PHONY: test test-rust test-python test-docs test-wheel
test: develop services test-rust test-python test-wheel ## everything: cargo test, pytest (with the doc examples), the wheel in a fresh venv
test-rust:
	cargo test --release -p banquet-core --quiet
test-python: develop services
	source scripts/services.env && $(PY) -m pytest -q -p no:cacheprovider
test-docs: develop ## only the examples: README's Python blocks and the docstrings' >>> (also in test-python)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_doc_examples.py
test-wheel: wheel
	scripts/wheel-smoke.sh

.PHONY: demo
demo: develop ## init a repo on embedded defaults, apply, materialize, retrieve, print
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH scripts/demo.sh

.PHONY: wheel
wheel: $(VENV)/.deps-stamp ## build one abi3 wheel (Python >= 3.10) into dist/
	rm -rf dist
	$(VENV)/bin/maturin build --release --quiet --out dist

.PHONY: lint fmt
lint: $(EXT_STAMP) ## cargo fmt --check, clippy -D warnings, ruff, mypy --strict, stubtest
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests benches compat
	$(VENV)/bin/ruff format --check python tests benches compat
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest banquet._core --mypy-config-file scripts/stubtest-mypy.ini \
		--allowlist scripts/stubtest-allowlist.txt
fmt: $(VENV)/.deps-stamp ## format Rust and Python
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benches compat
	$(VENV)/bin/ruff check --fix python tests benches compat

.PHONY: bench
bench: develop services ## whole-path benchmarks against peers (see benches/README.md)
	$(PIP) install -q -r benches/requirements.txt
	source scripts/services.env && $(PY) benches/historical.py
	source scripts/services.env && $(PY) benches/online.py
	source scripts/services.env && $(PY) benches/historical_postgres.py
	source scripts/services.env && $(PY) benches/server.py --repeat 3

.PHONY: clean
clean: ## remove the venv, wheels and caches (the cargo target dir is kept)
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache

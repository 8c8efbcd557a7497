# Duet — one entry point for setup, tests, benchmarks.
# `make test` on a fresh clone creates .venv (and installs what it needs) first.

PY_BOOT ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.duet-setup-$(shell cat requirements.txt 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 resolves to the local CPU wheel here; other torch specs pull GBs of CUDA.
	$(PY) -m pip install -q -r requirements.txt
	@rm -f $(VENV)/.duet-setup-* && touch $@

lint: setup
	$(PY) -m ruff check model_runtime tests

test: setup lint
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m model_runtime.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out

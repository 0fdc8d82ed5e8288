# Set-up and everyday commands. Every pip install goes through constraints.txt
# so that torch stays the local CPU wheel.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet -c constraints.txt
RUNS_DIR ?= runs

.PHONY: demo test lint typecheck bench clean chromium

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) -e '.[test]'
	touch $(VENV)/.installed-base $@

demo: $(VENV)/.installed-base
	$(VENV)/bin/daedalus train examples/cartpole.yaml --runs-dir $(RUNS_DIR)

test: lint chromium
	$(PY) -m pytest -q --durations=30 tests

# tests/smoke/test_report_chromium.py renders `daedalus report` in headless Chromium. As root
# it is installed from apt when missing; otherwise that test is skipped.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "chromium not installed: the report rendering test will be skipped"

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed-test
	$(PIP) -e '.[test,bench]'
	$(PY) benchmarks/ppo_vs_sb3.py
	$(PY) benchmarks/offpolicy_vs_sb3.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info

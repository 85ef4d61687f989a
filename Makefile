# Two commands: `make run` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint fmt bench chaos acceptance clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)
	@echo "podmgr is installed in $(VENV): \`source $(VENV)/bin/activate\` puts it on the PATH"

# `make run PROXY_PORT=8001` when 8000 is taken (passed to `podmgr demo --proxy-port`).
PROXY_PORT ?= 8000
run: $(STAMP)
	$(BIN)/podmgr demo --proxy-port $(PROXY_PORT)

lint: $(STAMP)
	$(BIN)/ruff check podmgr tests bench scripts manage_pod.py proxy_fastapi.py
	$(BIN)/ruff format --check podmgr tests bench scripts manage_pod.py proxy_fastapi.py
	$(BIN)/mypy podmgr

# Two workers: most tests wait on real processes (measured: 988 s serial, 516 s with -n 2).
test: lint
	$(BIN)/pytest -q -n 2

fmt: $(STAMP)
	$(BIN)/ruff check --fix podmgr tests bench scripts manage_pod.py proxy_fastapi.py
	$(BIN)/ruff format podmgr tests bench scripts manage_pod.py proxy_fastapi.py

# Ratios against same-run baselines, compared with bench/baselines.json for this machine
# class: exits 1 with a banner when one falls >10% (wrk: apt-get install -y wrk).
# `make bench BENCH_RECORD=1` stores this run's ratios instead. Not part of `make test`.
bench: $(STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.bench_watchdog
	$(BIN)/python -m bench.routing

RUNS ?= 50
chaos: $(STAMP)
	PODMGR_CHAOS_RUNS=$(RUNS) PODMGR_STATE_KILLS=500 PODMGR_PROXY_LOAD_REQUESTS=10000 \
		$(BIN)/pytest -q -s -m slow tests/reliability

# The shipped config against a simulator at a real pod's start-up pace (~5 minutes).
acceptance: $(STAMP)
	$(BIN)/pytest -q -s -m acceptance tests/acceptance

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The two commands of README.md:  `make run`  and  `make test`.
# Each sets up everything it needs first (Debian packages, a virtualenv, pip packages).

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
ADDR    ?= 127.0.0.1:8000

.PHONY: run test bench lint setup services clean

run: system-packages-run setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py runcomet $(ADDR)

test: system-packages-test lint services
	$(PY) -m pytest

bench: system-packages-bench setup services
	$(PY) bench/bench_server.py
	$(PY) bench/bench_chat.py
	$(PY) bench/bench_scaleout.py
	$(PY) bench/bench_hostile.py
	$(PY) bench/bench_sse.py
	$(PY) bench/bench_sse.py --app chat --streams 1000
	$(PY) bench/bench_threads.py
	$(PY) bench/bench_slow_views.py
	$(PY) bench/bench_chat_db.py
	$(PY) bench/bench_signals.py
	$(PY) bench/bench_ws_framing.py
	$(PY) bench/bench_websocket.py
	$(PY) bench/bench_autobahn.py

# Style, types, and the layers of README.md's Architecture (no import cycles).
lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

setup: system-packages-run $(VENV)/.installed

# Debian packages by purpose: the browser and nginx only for the tests, wrk for benches.
system-packages-%:
	@bash scripts/install-system-packages.sh $*

services:
	@bash scripts/ensure-services.sh

# comet-server itself (editable, with the redis extra: its dependencies are in
# pyproject.toml), then the chat site's and the tests' packages (requirements.txt).
$(VENV)/.installed: pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[redis]' -r requirements.txt
	touch $@

clean:
	rm -rf $(VENV) staticfiles .pytest_cache

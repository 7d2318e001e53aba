# Two commands set everything up on a fresh machine:
#   make run   - a virtualenv, the install, then the whole cluster in one process
#   make test  - the same set-up, then lint (ruff) and the full test suite
#   make bench - the benchmarks (by hand: they take a while and load the machine)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	@echo "Pygmy front end: http://127.0.0.1:8080  (Ctrl-C stops the cluster)"
	PYGMY_CONFIG=config.ini $(BIN)/twistd -n --pidfile= -y pygmy.tac

test: lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/failover.py
	$(BIN)/python benchmarks/exchange.py

clean:
	rm -rf $(VENV) var _trial_temp *.egg-info .pytest_cache

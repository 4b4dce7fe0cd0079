# The two commands a newcomer runs: `make demo` (the main job) and `make test` (the suite).
# Both create .venv on first use; nothing else needs to be installed by hand.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo lint bench reliability-report clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/raftflow demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/generator.py; $(BIN)/python bench/rewarder.py; $(BIN)/python bench/trainer.py; $(BIN)/python bench/iteration.py

# Re-runs the fault-injection, fuzzing and security tests and rewrites docs/reliability.md from what
# they tried and saw.
reliability-report: $(STAMP)
	$(BIN)/python -m pytest -q tests/reliability --reliability-report docs/reliability.md

clean:
	rm -rf $(VENV) models artifacts runs .pytest_cache

# Two commands on a fresh machine: `make demo` and `make test` (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA ?= data

.PHONY: install test test-fast demo up status down dashboard bench bench-publish lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing the project and its dev tools into $(VENV) (compiled to bytecode) ..."
	@# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on these machines) every new process
	@# (stream workers, drift checks, Prefect and MLflow servers, tests) would otherwise compile pandas,
	@# evidently, mlflow ... from source: importing those three took 24 CPU-s instead of 11
	@($(BIN)/python -m pip install -q --disable-pip-version-check uv && \
	  $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]') || \
	 $(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

# The whole system: simulate (drift later in the live stream), churn up, train and stream
# through their Prefect deployments, a live producer; until Ctrl-C. DEMO_QUICK=1: small and
# self-terminating (CI); DEMO_QUICK=0/false/no or unset: the full one; `churn demo` reads it from
# the environment (a make command-line variable arrives there too) and refuses any other value.
# DEMO_ARGS=--overwrite replaces a $(DATA) the demo did not make.
demo: $(STAMP)
	$(BIN)/churn --data-dir $(DATA) demo $(DEMO_ARGS)

up: $(STAMP)
	$(BIN)/churn --data-dir $(DATA) up

status: $(STAMP)
	$(BIN)/churn --data-dir $(DATA) status

down: $(STAMP)
	$(BIN)/churn --data-dir $(DATA) down

dashboard: $(STAMP)
	$(BIN)/churn --data-dir $(DATA) dashboard --port 8501

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# after a full `make bench`: copy results.json to the committed published.json, re-render README/docs
bench-publish: $(STAMP)
	$(BIN)/python -m benchmarks.publish

lint: $(STAMP)
	$(BIN)/ruff check .

# A demo running on $(DATA) holds $(DATA)/.churn-demo.lock: refuse (stop it with Ctrl-C); a stack
# recorded there is stopped first (`churn down`), or its processes would outlive their state file.
clean:
	@if [ -e $(DATA)/.churn-demo.lock ] && command -v flock >/dev/null && ! flock -n $(DATA)/.churn-demo.lock true; then \
	  echo "error: a demo (pid $$(cat $(DATA)/.churn-demo.lock)) is running on $(DATA); stop it (Ctrl-C in its terminal), then make clean" >&2; exit 1; fi
	@if [ -e $(DATA)/stack/state.json ]; then $(BIN)/churn --data-dir $(DATA) down; fi
	rm -rf $(DATA) .pytest_cache .ruff_cache benchmarks/results.json benchmarks/results-quick.json benchmarks/provenance.json benchmarks/.cache

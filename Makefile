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
# self-terminating (CI). DEMO_ARGS=--overwrite replaces a $(DATA) the demo did not make.
demo: $(STAMP)
	$(BIN)/churn --data-dir $(DATA) demo $(if $(filter-out 0,$(DEMO_QUICK)),--quick) $(DEMO_ARGS)

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

clean:
	rm -rf $(DATA) .pytest_cache .ruff_cache benchmarks/results.json benchmarks/results-quick.json benchmarks/provenance.json benchmarks/.cache

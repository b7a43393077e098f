# Two commands on a fresh machine: `make demo` and `make test` (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA ?= data

.PHONY: install test test-fast demo dashboard bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing the project and its dev tools into $(VENV) ..."
	@($(BIN)/python -m pip install -q --disable-pip-version-check uv && \
	  $(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]') || \
	 $(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/churn --data-dir $(DATA) simulate --users 20000 --days 180 --overwrite
	$(BIN)/churn --data-dir $(DATA) train
	@echo
	@echo "Compare the candidates in the MLflow UI:"
	@echo "  $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --host 127.0.0.1 --port 5000"
	@echo "  then open http://127.0.0.1:5000 (experiment 'churn')"

dashboard: $(STAMP)
	$(BIN)/churn --data-dir $(DATA) dashboard --port 8501

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(DATA) .pytest_cache .ruff_cache benchmarks/results.json

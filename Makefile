# Two commands: `make book` and `make test`. Both create .venv from
# requirements.txt first (once; again whenever requirements.txt changes).
# `make test` also installs the optional Spark extra (requirements-spark.txt:
# PySpark, about 500 MB) to test the Spark path; `make book` does not.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: book test lint venv spark clean

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# The Spark extra, on top of the base environment (again whenever either changes).
$(VENV)/.installed-spark: $(VENV)/.installed requirements-spark.txt constraints.txt
	$(BIN)/python -m pip install --quiet -r requirements-spark.txt
	touch $@

venv: $(VENV)/.installed

spark: $(VENV)/.installed-spark

book: venv
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# ruff lints and formats the notebooks' code cells itself (no nbqa needed since ruff 0.6).
LINTED := src tests benchmarks notebooks setup.py

lint: venv
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

test: venv spark lint
	$(BIN)/python -m pytest

clean:
	rm -rf _build .pytest_cache

# Two commands: `make book` and `make test`. Both create .venv from
# requirements.txt first (once; again whenever requirements.txt changes).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: book test venv clean

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(VENV)/.installed

book: venv
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: venv
	$(BIN)/python -m pytest

clean:
	rm -rf _build .pytest_cache

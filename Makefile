# Two commands for a fresh machine: `make reproduce` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= small
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install reproduce test test-slow lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch and torchvision resolve as one release pair in this single install
	$(PY) -m pip install -e ".[notebooks,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3
	touch $@

install: $(VENV)/.installed

reproduce: install
	$(PY) -m framer_nb reproduce --profile $(PROFILE)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(PY) -m ruff check framer_nb tests benchmarks

bench: install
	$(PY) benchmarks/overhead.py --backbone tiny-dit --device cpu

clean:
	rm -rf build runs

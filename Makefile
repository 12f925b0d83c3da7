# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
PY := $(VENV)/bin/python

.PHONY: demo test install install-test benchmark clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

install: $(VENV)/bin/activate
	$(PIP) install -q -c constraints.txt -e .

install-test: $(VENV)/bin/activate
	$(PIP) install -q -c constraints.txt -e ".[test,ray]"

demo: install
	$(VENV)/bin/vaebench run suites/quick.toml --jobs 2

test: install-test
	$(PY) -m pytest -q

benchmark: install-test
	$(PY) -m pytest -q benchmarks/*.py --benchmark-only

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks

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
	$(PIP) install -q -c constraints.txt -e ".[test,ray,tensorboard,mlflow]"

# Every objective's claim over 5 seeds (suites/claims.toml): the comparison table of the metrics
# the claims use, the claims verdict with each verdict's trajectory over the budgets scored along
# training (175, 350 and 700 steps), and the HTML report. A failed claim is a finding, so it is
# printed, not turned into a failed make.
demo: install
	$(VENV)/bin/vaebench run suites/claims.toml --jobs 2 --quiet
	@$(VENV)/bin/vaebench results runs/claims --suite suites/claims.toml --metrics kl,tc,cov_offdiag,prior_mmd,iwae_nll
	@$(VENV)/bin/vaebench claims runs/claims --suite suites/claims.toml || echo "(at least one claim fails at its published defaults: see the verdicts above)"
	@$(VENV)/bin/vaebench report runs/claims --suite suites/claims.toml >/dev/null
	@echo "HTML report: runs/claims/report/report.html (vaebench results runs/claims --all: every value;"
	@echo "  --step 175, 350 or 700: the table at that budget, on the 1,000 test images scored along training)"

# The annotations checked (mypy) and the code linted (ruff check), as configured in pyproject.toml, then the tests.
test: install-test
	$(PY) -m mypy
	$(PY) -m ruff check .
	$(PY) -m pytest -q

benchmark: install-test
	$(PY) -m pytest -q benchmarks/*.py --benchmark-only

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks .mypy_cache .ruff_cache

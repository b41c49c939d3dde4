# The two commands of the README:
#   make run    install everything, then run the whole platform on the embedded default
#   make test   install what the tests need, check lint and types, then run the tests
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: run test lint install install-test db dashboard bench

run: install
	$(PYTHON) -m coherex up

test: install-test lint
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# ruff (rules and per-file exceptions: pyproject [tool.ruff]) and mypy --strict on spec/, llm/,
# runtime/ (pyproject [tool.mypy]); `ruff check --fix . && ruff format .` fixes most findings
lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

install:
	PYTHON=$(PYTHON) bash scripts/install.sh

install-test:
	PYTHON=$(PYTHON) bash scripts/install.sh --test

db:
	$(PYTHON) -m coherex db start && $(PYTHON) -m coherex db migrate

# the dashboard alone (`make run` starts it with everything else); needs the database running
dashboard:
	$(PYTHON) -m streamlit run dashboard_app.py --server.port $${DASHBOARD_PORT:-8501} --server.address 127.0.0.1

bench:
	for b in bench/bench_*.py; do echo "== $$b"; PYTHONPATH=. $(PYTHON) $$b || exit 1; done

# The two commands of the README:
#   make run    install everything, then run the whole platform on the embedded default
#   make test   install what the tests need, then run them
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: run test install install-test up db lint bench

run: install
	$(PYTHON) -m coherex up

test: install-test
	$(PYTHON) -m pytest $(PYTEST_ARGS)

install:
	PYTHON=$(PYTHON) bash scripts/install.sh

install-test:
	PYTHON=$(PYTHON) bash scripts/install.sh --test

db:
	$(PYTHON) -m coherex db start && $(PYTHON) -m coherex db migrate

bench:
	for b in bench/bench_*.py; do echo "== $$b"; PYTHONPATH=. $(PYTHON) $$b || exit 1; done

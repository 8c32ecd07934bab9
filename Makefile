# Two commands on a fresh machine:
#   make demo   set up, then run mock + bot + handshake + a short load, with a summary
#   make test   set up, then run the docstring examples and every test tier
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-unit doctest lint bench dashboards clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python -m loadtests.main_job $(ARGS)

test: setup doctest
	$(BIN)/python -m pytest $(ARGS)

# The `>>>` examples of the packages (a run of their own: --doctest-modules over tests/ would
# import every helper and clash on the conftest.py basenames). The locust modules are left out:
# importing locust gevent-monkey-patches the whole process (they hold no examples).
doctest: setup
	$(BIN)/python -m pytest --doctest-modules -q bot mock_meta loadtests bench \
		--ignore=loadtests/locustfile.py --ignore=loadtests/users.py \
		--ignore=loadtests/shape.py --ignore=loadtests/lifecycle.py

test-unit: setup
	$(BIN)/python -m pytest tests/unit $(ARGS)

lint: setup
	$(BIN)/ruff check bot mock_meta loadtests dashboards tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench $(ARGS)

dashboards: setup
	$(BIN)/python -m dashboards.build

clean:
	rm -rf $(VENV) var reports .pytest_cache .mypy_cache .ruff_cache

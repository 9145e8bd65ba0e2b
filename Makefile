# Vern - the two commands a new machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
TEST_JOBS ?= auto
COVERAGE ?=
COVERAGE_FLOOR ?= 90
PORT ?= 8000
# Every dependency (the dev extra and the driver extras it pulls), pinned with hashes.
LOCK := requirements.lock

.PHONY: demo test lint migrations-check install serve bench-quick clean lock audit-deps messages

## The locked dependencies first (hashes required), then Vern itself without resolving anything.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Write requirements.lock again from pyproject.toml (after changing a dependency); needs uv.
lock:
	test -x $(VENV)-tools/bin/uv || { $(PYTHON) -m venv $(VENV)-tools && $(VENV)-tools/bin/python -m pip install --quiet uv; }
	$(VENV)-tools/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu \
	  --custom-compile-command "make lock" -o $(LOCK)

## Known vulnerabilities in the locked dependencies (pip-audit asks PyPI's advisory data).
audit-deps: $(STAMP)
	$(BIN)/pip-audit --disable-pip --require-hashes -r $(LOCK)

## Install, create the SQLite database under var/, load the demo data, serve on 127.0.0.1:$(PORT)
## (`make demo PORT=8100` moves every address: console, banner, statistics tag, mail links) with
## the demo's mail server on $(PORT)+25. Writes var/demo.env, which `vern` reads when VERN_ENV is unset.
demo: $(STAMP)
	VERN_ENV=demo VERN_PORT=$(PORT) $(BIN)/vern demo

serve: $(STAMP)
	$(BIN)/vern serve

## Install and run every test (services and Chromium are skipped with a reason when missing,
## unless VERN_REQUIRE_SERVICES=1).
## Tests run in parallel, one worker per core (TEST_JOBS=1 for one process), each test file in one
## worker. COVERAGE=1 measures line coverage of vern/ and fails under COVERAGE_FLOOR percent.
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile $(if $(COVERAGE),--cov=vern --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)) $(PYTEST_ARGS)

## ruff, mypy and the package layers (import-linter contracts in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check vern tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## Texts: extract them from the Python code and the templates (babel.cfg), add new ones to both
## catalogs (vern/locale/{nb,en}/LC_MESSAGES/messages.po: translate them there) and compile the .mo files.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-default-keywords -k _ -k gettext:2 -k ngettext:2,3 -k N_ \
		--no-location --sort-output --omit-header -o vern/locale/messages.pot vern
	$(BIN)/pybabel update -i vern/locale/messages.pot -d vern/locale --no-wrap \
		--ignore-obsolete --no-fuzzy-matching
	$(BIN)/pybabel compile -d vern/locale --statistics

## Migrations reach head and match the models, on SQLite and PostgreSQL.
migrations-check: $(STAMP)
	$(BIN)/python -m vern.app.migrate_check

bench-quick: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) $(VENV)-tools var .pytest_cache .mypy_cache .ruff_cache

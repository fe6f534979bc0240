# One command to try the workbench (make demo), one to run the tests (make test).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint system-deps bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps -c constraints.txt label-studio-sdk
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/likeness demo

# PostgreSQL and Chromium come from Debian; the tests that need them skip (with the reason)
# where they are missing and cannot be installed.
system-deps:
	@if [ -x /usr/bin/chromium ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql chromium chromium-driver fonts-dejavu-core; \
	else echo "note: install Debian's postgresql and chromium to run the database-server and browser tests"; fi

test: $(STAMP) system-deps
	$(PY) -m pytest

# Lint and import order (ruff) and types (mypy) over the whole tree.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench.ingest

clean:
	rm -rf $(VENV) data .pytest_cache

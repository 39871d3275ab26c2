# Two commands for a fresh machine: `make demo` and `make test`. Each sets up its own virtual environment.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test test-all bench lint clean chromium

setup: $(VENV)/.installed

# torch is pinned to the CPU build 2.13.0 first so that nothing pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check torch==2.13.0
	$(PIP) install -q --disable-pip-version-check -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/edgeopt demo --out edgeopt-demo

test: setup chromium
	$(PY) -m pytest -q

# Headless Chromium renders report.html in tests/report/test_html.py (skipped, with the reason, when absent).
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed; the HTML rendering test will be skipped"

test-all: setup
	$(PY) -m pytest -q -m ''

lint: setup
	$(VENV)/bin/ruff check edgeopt tests benchmarks

clean:
	rm -rf $(VENV) edgeopt-demo build dist *.egg-info

# Two entry points: `make demo` and `make test`. Both build .venv first when needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: install demo lint test browser clean gpu-wheels

$(STAMP): requirements/cpu.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-deps -r requirements/cpu.txt
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/selfplay run

# ruff on everything, mypy on the pluggable parts (pyproject.toml says which), then the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The browser tests' headless Chromium: Debian's package (a test tool's own browser download is
# not reachable from CI). Installed once; SELFPLAY_CHROMIUM points the tests at another binary.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

browser: $(CHROMIUM)

test: lint $(CHROMIUM)
	SELFPLAY_CHROMIUM=$(CHROMIUM) $(VENV)/bin/python -m pytest

# pydantic's wheels (as installed here) for bench/gpu_check.sh on a bare torch image: Python 3.12, x86_64.
gpu-wheels: $(STAMP)
	$(VENV)/bin/pip freeze | grep -iE '^(pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection)==' > $(VENV)/gpu-wheels.txt
	$(VENV)/bin/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
		-d .gpu-wheels -r $(VENV)/gpu-wheels.txt

clean:
	rm -rf $(VENV) runs .gpu-wheels

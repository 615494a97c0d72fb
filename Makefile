# pingjia: `make sim` runs the virtual device, `make test` tests everything.
# Each target sets itself up on a fresh clone: Debian packages, a venv, pip.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
DEBS := socat fonts-wqy-zenhei postgresql nodejs chromium chromium-driver
WEB := host_tools/collector/web
VENDOR := host_tools/collector/static/vendor
START ?= 2026-11-23T09:00:00+08:00
SIMARGS ?= --window B01 --roster examples/staff.csv --start $(START)

.PHONY: setup web sim test bench lint mpy clean

setup: $(STAMP) $(VENDOR)/echarts.min.js

$(STAMP):
	@missing=""; for d in $(DEBS); do dpkg -s $$d >/dev/null 2>&1 || missing="$$missing $$d"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

# the dashboard's chart library from npm (pinned by its package-lock.json), copied into the
# package: the server serves it itself, nothing is fetched from a CDN at run time
# (Debian's npm only where node came without one: NodeSource's nodejs carries its own)
web: $(VENDOR)/echarts.min.js

# a file target, so a checkout whose venv is already set up (or a `git clean`) gets it again
$(VENDOR)/echarts.min.js: $(WEB)/package-lock.json | $(STAMP)
	@command -v npm >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm >/dev/null; }
	npm ci --prefix $(WEB) --no-audit --no-fund --silent
	mkdir -p $(VENDOR)
	cp $(WEB)/node_modules/echarts/dist/echarts.min.js $(VENDOR)/

mpy: setup
	$(PY) -m host_tools.device.build >/dev/null

sim: setup
	$(VENV)/bin/pingjia sim $(SIMARGS)

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(PY) -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc = 5 ]; then echo "pytest collected no tests: that is a failure"; exit 1; fi; exit $$rc

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf build .pytest_cache .ruff_cache

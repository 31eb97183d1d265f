# simrec: `make demo` runs the whole nightly pipeline on one machine, `make test` the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= .demo
EVENTS ?= 1000000
PYTEST_ARGS ?=
# Every optional group (pyproject.toml): the demo runs the whole pipeline, the suite tests it.
EXTRAS ?= local,spark,beam,gcp,eval,test,build,bench

.PHONY: install demo test test-fast test-slow test-unit test-engines test-cloud test-http lint bench \
	build clean

include mk/terraform.mk

$(STAMP): pyproject.toml setup.py constraints.txt $(shell find simrec -name '*.pyx')
	@command -v java >/dev/null || { echo "simrec needs Java 17 for Spark (apt-get install openjdk-17-jre-headless)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt setuptools wheel cython numpy
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt --no-build-isolation -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/simrec demo --workdir $(WORKDIR) --events $(EVENTS)

test: $(STAMP) $(CHECKOV)
	$(PY) -m pytest $(PYTEST_ARGS)

# The tier for every change, under two minutes on 2 cores: every folder, without the tests
# that start Spark or an emulator, build the deploy artifacts, run the whole local chain,
# or belong to the nightly tier.
FAST := not spark and not emulator and not build and not chain and not slow
test-fast: $(STAMP)
	$(PY) -m pytest -m "$(FAST)" $(PYTEST_ARGS)

# One folder of tests/ (unit, engines, cloud, http), e.g. `make test-engines`.
TEST_FOLDERS := unit engines cloud http
$(addprefix test-,$(TEST_FOLDERS)): test-%: $(STAMP)
	$(PY) -m pytest tests/$* $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check simrec functions spark beam tests bench

# wrk drives bench/http_load.py (a Debian package): installed when absent and apt-get can.
WRK_INSTALL := command -v wrk >/dev/null || { command -v apt-get >/dev/null && \
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq wrk; } || \
	echo "wrk not installed (apt-get install -y wrk): bench/http_load.py will say it skipped"
bench: $(STAMP)
	@$(WRK_INSTALL)
	$(PY) bench/run_all.py

build: $(STAMP)
	$(PY) tools/build.py --out $(BUILD_DIR)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build *.egg-info $(WORKDIR) .bench
	find simrec -name '*.so' -delete

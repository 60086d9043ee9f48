# fleetlog's front door: `make demo` and `make test` set up everything on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: install system-deps kafka-jars ui browser-deps screenshots config-docs perf-docs demo test test-unit lint bench up down status clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# Java runs the broker, Maven fetches its JARs; install them from Debian's packages if missing.
system-deps:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless maven; \
	  else echo "fleetlog needs Java 17+ and Maven: install openjdk-17-jre-headless and maven" >&2; exit 3; fi; }

kafka-jars: system-deps
	deploy/kafka/kafka.sh fetch

# The dashboard's front end: npm installs uPlot and esbuild (pinned by package-lock.json), esbuild bundles.
UI := fleetlog/ui/web
ui: $(UI)/dist/app.js

$(UI)/node_modules/.package-lock.json: $(UI)/package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; \
	  else echo "the dashboard's build needs Node.js and npm: install nodejs and npm" >&2; exit 3; fi; }
	cd $(UI) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(UI)/dist/app.js: $(UI)/node_modules/.package-lock.json $(UI)/package.json $(wildcard $(UI)/src/*)
	cd $(UI) && npm run --silent build

# The browser tests drive Debian's Chromium through its matching chromedriver.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	  else echo "the browser tests need chromium and chromium-driver (Debian packages)" >&2; exit 3; fi; }

# Regenerate the README's dashboard screenshots from the browser tests.
screenshots: install kafka-jars ui browser-deps
	FLEETLOG_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/integration/test_ui_browser.py

# Regenerate docs/configuration.md from the settings' declarations (a unit test fails when it is stale).
config-docs: install
	$(BIN)/python -m fleetlog.config --markdown > docs/configuration.md

demo: install kafka-jars ui
	$(BIN)/fleetlog demo

lint: install
	$(BIN)/ruff check .

test: install kafka-jars ui browser-deps lint
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest tests/unit

# Benchmarks (bench/): the bench extra (MLflow, TensorBoard, profilers) is installed here only, never by `make test`;
# bench/constraints.txt pins it on top of constraints.txt.  BENCH_ARGS=--quick for a short check of the harness.
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml constraints.txt bench/constraints.txt | cksum | cut -d' ' -f1)

$(BENCH_STAMP): pyproject.toml constraints.txt bench/constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -c bench/constraints.txt -e '.[bench]'
	rm -f $(VENV)/.bench-*
	touch $@

bench: install kafka-jars $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Publish the last full `make bench` (bench/results/latest.json) into docs/performance.md's tables.
perf-docs: install
	$(BIN)/python -m bench.docs --publish

up: install kafka-jars ui
	$(BIN)/fleetlog up

down:
	$(BIN)/fleetlog down

status:
	$(BIN)/fleetlog status

clean: down
	rm -rf $(VENV) .pytest_cache .ruff_cache

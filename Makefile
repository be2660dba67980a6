# Two commands: `make run` (server with simulated demo phones) and `make test` (everything CI runs).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test lint typecheck unit sysdeps bench bench-full clean soak fuzz

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/uacsta demo

# Real test peers come from Debian packages; install them when missing (root, as on CI).
# sipp (sip-tester) is the independent SIP peer; chromium drives the browser tests;
# postgresql's server binaries (not on PATH: a pair's check may be a path glob) run the
# store tests' throw-away PostgreSQL server; kamailio (in /usr/sbin) is the SIP edge;
# nats-server carries the cluster tests' bus.
SYSPKGS := sip-tester:sipp chromium:chromium postgresql:/usr/lib/postgresql/*/bin/initdb \
	kamailio:/usr/sbin/kamailio nats-server:nats-server
sysdeps:
	@missing=""; for pair in $(SYSPKGS); do pkg=$${pair%%:*}; bin=$${pair#*:}; \
	  case $$bin in /*) ls $$bin >/dev/null 2>&1;; *) command -v $$bin >/dev/null 2>&1;; esac \
	  || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools fuzz
	$(BIN)/ruff format --check src tests benchmarks tools fuzz

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) sysdeps
	$(BIN)/pytest -q -p no:cacheprovider

test: lint typecheck unit

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The full-size performance runs (minutes each); `make bench` runs every script with defaults.
bench-full: $(STAMP)
	$(BIN)/python benchmarks/scaling.py --phones 100,1000,10000
	$(BIN)/python benchmarks/keepalive.py --phones 10000 --interval 60 --window 120
	$(BIN)/python benchmarks/csta_relay.py --seconds 10 --rate 2500
	$(BIN)/python benchmarks/fanout.py --clients 100 --events 1000

# Coverage-guided fuzzing (atheris) of the SIP and CSTA parsers: FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

# Minutes of call load on a `uacsta serve` subprocess; not part of `make test`. MINUTES=10 make soak
MINUTES ?= 3
soak: $(STAMP)
	$(BIN)/python tools/soak.py --minutes $(MINUTES)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

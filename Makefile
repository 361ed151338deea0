# The two commands of the README, plus the checks they run. Each installs what it needs:
# uv from PyPI if it is not on PATH (into .tools/), then the locked dependencies (uv.lock).
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
DEMO_ARGS ?=

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test lint types postgres browser unit bench bench-delivery sync

## Run the main job on the embedded default: a demo shop, local state, a local AWS.
demo: sync
	$(UV) run --frozen loyalty demo $(DEMO_ARGS)

## Run every check: lint, types, the whole test suite.
test: sync lint types postgres browser
	$(UV) run --frozen pytest

## Lint: ruff, the formatter, the import contracts (each stage imports only the stages below it), the CloudFormation,
## the worker's Dockerfile (hadolint).
lint: sync
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports
	$(UV) run --frozen cfn-lint infra/*.yaml
	$(UV) run --frozen hadolint infra/worker/Dockerfile

## PostgreSQL's binaries for the Prefect-on-PostgreSQL test (Debian's package, when missing).
postgres:
	bash .ci/install-postgres

## Chromium for the browser test of the Prefect UI (Debian's package, when missing; never a browser download).
browser:
	bash .ci/install-browser

types: sync
	$(UV) run --frozen mypy

unit: sync
	$(UV) run --frozen pytest tests/unit

bench: sync
	$(UV) run --frozen python bench/daily_run.py --customers 100000

## The send path against a bare boto3 loop on one local SES (moto is the ceiling: about 100 msg/s here).
bench-delivery: sync
	$(UV) run --frozen python bench/delivery.py --messages 20000

sync: $(UV)
	$(UV) sync --frozen --quiet

$(CURDIR)/.tools/bin/uv:
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

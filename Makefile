# `make test` is the full test suite: it installs the tools the tests drive (moto_server, an
# SQS-compatible server; cargo-lambda, the Lambda runtime emulator) into .venv, then runs
# every Rust test. `make deploy-check` lints the SAM template and builds it as `sam deploy`
# would, with its own tools in .venv-deploy.

VENV ?= .venv
DEPLOY_VENV ?= .venv-deploy
PYTHON ?= python3
TOOLS := $(VENV)/.installed
DEPLOY_TOOLS := $(DEPLOY_VENV)/.installed
# Only the x86_64 Rust target exists on the build machines; deployments default to arm64.
ARCHITECTURE ?= x86_64

BENCH_VENV ?= .venv-bench
BENCH_TOOLS := $(BENCH_VENV)/.installed

.PHONY: test local deploy-check lint-template sam-build bench sam-local hot-layout

test: $(TOOLS)
	MOTO_SERVER="$(CURDIR)/$(VENV)/bin/moto_server" CARGO_LAMBDA="$(CURDIR)/$(VENV)/bin/cargo-lambda" \
		cargo test --workspace

local:
	cargo run --example local-invoke -- events/mixed-batch.json

deploy-check: lint-template sam-build

lint-template: $(DEPLOY_TOOLS)
	$(DEPLOY_VENV)/bin/cfn-lint template.yaml
	$(DEPLOY_VENV)/bin/cfn-lint template.yaml -a cfn_lint_serverless.rules
	$(DEPLOY_VENV)/bin/python tools/check_template.py template.yaml

sam-build: $(DEPLOY_TOOLS)
	PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 \
		sam build --parameter-overrides Architecture=$(ARCHITECTURE)

# SAM local for real: `sam local invoke` on every sample event and one `start-lambda` call, in
# Docker (a running engine is needed; the stand-in base image is built when missing).
sam-local: $(TOOLS) $(DEPLOY_TOOLS)
	DEPLOY_VENV=$(DEPLOY_VENV) VENV=$(VENV) bash tools/sam-local.sh

# The benchmark: the release bootstrap and the Python baseline, same Runtime API, same fake.
bench: $(BENCH_TOOLS)
	PATH="$(CURDIR)/$(BENCH_VENV)/bin:$$PATH" cargo lambda build --release --bin bootstrap
	# Both of the bench crate's binaries: voice-bench runs voice-floor beside it.
	cargo build --release -p voice-bench
	cargo run --release -p voice-bench --bin voice-bench -- \
		--bootstrap target/lambda/bootstrap/bootstrap --python $(BENCH_VENV)/bin/python \
		--moto-server $(BENCH_VENV)/bin/moto_server

# The cold start's code layout (link/hot-text.ld), profiled from both release builds: after a
# dependency or toolchain update.
hot-layout: $(BENCH_TOOLS)
	PATH="$(CURDIR)/$(BENCH_VENV)/bin:$$PATH" bash tools/hot-layout.sh

$(BENCH_TOOLS): tools/requirements-bench.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-bench.txt
	touch $@

$(TOOLS): tools/requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-test.txt
	touch $@

$(DEPLOY_TOOLS): tools/requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-deploy.txt
	touch $@

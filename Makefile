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

.PHONY: test local deploy-check lint-template sam-build

test: $(TOOLS)
	MOTO_SERVER="$(CURDIR)/$(VENV)/bin/moto_server" CARGO_LAMBDA="$(CURDIR)/$(VENV)/bin/cargo-lambda" \
		cargo test --workspace

local:
	cargo run --example local-invoke -- events/mixed-batch.json

deploy-check: lint-template sam-build

lint-template: $(DEPLOY_TOOLS)
	$(DEPLOY_VENV)/bin/cfn-lint template.yaml
	$(DEPLOY_VENV)/bin/cfn-lint template.yaml -a cfn_lint_serverless.rules

sam-build: $(DEPLOY_TOOLS)
	PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 \
		sam build --parameter-overrides Architecture=$(ARCHITECTURE)

$(TOOLS): tools/requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-test.txt
	touch $@

$(DEPLOY_TOOLS): tools/requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-deploy.txt
	touch $@

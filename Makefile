# `make test` is the full test suite: it installs moto_server (the SQS-compatible server the
# end-to-end tests start) into a local virtualenv, then runs every Rust test.

VENV ?= .venv
PYTHON ?= python3
MOTO := $(VENV)/bin/moto_server

.PHONY: test local
test: $(MOTO)
	MOTO_SERVER="$(CURDIR)/$(MOTO)" cargo test --workspace

local:
	cargo run --example local-invoke -- events/mixed-batch.json

$(MOTO): tools/requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-test.txt
	touch $(MOTO)

# The README's two commands: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON := .venv/bin/python

.PHONY: run test bootstrap bootstrap-test fixtures build lint fmt clean-fixtures

run: bootstrap
	cargo run --release --

test: bootstrap-test fixtures
	cargo test --all-targets

bootstrap:
	@scripts/bootstrap.sh

bootstrap-test:
	@scripts/bootstrap.sh test

# Reference outputs from the venv's PyTorch; rebuilt only when the script changes.
fixtures: bootstrap-test
	$(PYTHON) tests/fixtures/make_fixtures.py --out target/fixtures

build: bootstrap
	cargo build --release

lint: bootstrap
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean-fixtures:
	rm -rf target/fixtures

# sub2api — the two commands: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := run

CARGO ?= cargo
# Release build of the server and the wasm bundle (target/release/sub2api + target/site).
BIN := target/release/sub2api

.PHONY: run test tools test-tools build fmt-check clippy rust-test sdk-test e2e deploy-check clean

## Build and start the gateway + admin UI on http://localhost:8080 with SQLite under ./data.
run: tools build
	@echo "==> starting sub2api on http://localhost:$${PORT:-8080} (data in ./data; Ctrl-C to stop)"
	@echo "==> the first start prints the admin sign-in line: look for 'email: … password: …'"
	SUB2API__SERVER__SITE_ROOT=$(CURDIR)/target/site ./$(BIN)

## Install what is missing, then run every check: format, lints (native and wasm), Rust tests
## (PostgreSQL ones when TEST_DATABASE_URL is set, Redis ones when TEST_REDIS_URL is set) and
## the official Anthropic Python SDK against the gateway (debug build), and the Playwright
## browser tests against a release build.
test: test-tools fmt-check clippy rust-test sdk-test e2e deploy-check

tools:
	scripts/tools.sh build

test-tools:
	scripts/tools.sh test

build:
	$(CARGO) leptos build --release

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --exclude frontend --all-targets -- -D warnings
	$(CARGO) clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

rust-test:
	@if [ -n "$${TEST_DATABASE_URL:-}" ]; then echo "==> PostgreSQL tests against $${TEST_DATABASE_URL}"; \
	  else echo "==> TEST_DATABASE_URL not set: PostgreSQL variants return early"; fi
	$(CARGO) test --workspace --exclude frontend

## The `anthropic` Python SDK (pinned in sdk-tests/requirements.txt, venv in target/sdk-venv)
## against the real gateway and the fake upstream.
sdk-test:
	CARGO=$(CARGO) scripts/sdk-tests.sh

e2e: build
	$(CARGO) build --release -p proxy --features testing --bin fake-upstream
	rm -rf end2end/test-results
	cd end2end && { status=0; npx playwright test || status=$$?; node summary.js || status=1; exit $$status; }

## The deployment kit: compose files against .env.example, shellcheck, the systemd unit,
## docker-deploy.sh, and install.sh end to end from an archive served on 127.0.0.1.
deploy-check:
	CARGO=$(CARGO) scripts/deploy-check.sh

clean:
	$(CARGO) clean
	rm -rf end2end/test-results

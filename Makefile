# WA Device Admin: `make run` to start the app, `make test` to check everything.
# Both install what is missing first (Debian/Ubuntu: apt packages, npm packages).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export DEBIAN_FRONTEND := noninteractive

# What building the app needs (WebKitGTK and friends), and what the tests add.
APP_DEBS := build-essential pkg-config curl file libwebkit2gtk-4.1-dev \
	libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev libdbus-1-dev
TEST_DEBS := xvfb webkit2gtk-driver gnome-keyring dbus-x11 libsecret-tools python3-venv util-linux
TAURI_DRIVER_VERSION := 2.1.0
# The REST API fuzzer, from PyPI into a virtualenv under target/ (PEP 668-safe).
SCHEMATHESIS_VERSION := 4.32.5
FUZZ_VENV := target/fuzz-venv
FUZZ_STAMP := $(FUZZ_VENV)/.schemathesis-$(SCHEMATHESIS_VERSION)
# What tests/gowa/*.py import, pinned (already Schemathesis's dependencies at
# these versions; named so that an upgrade of it cannot drop them).
GOWA_PY_PACKAGES := PyYAML==6.0.4 requests==2.34.2 jsonschema_rs==0.60.3
# Examples per API operation and phase; raise it for a longer local run.
FUZZ_EXAMPLES ?= 30

UI_STAMP := ui/node_modules/.npm-ci-done
# The second-client conformance suite: Baileys, pinned in its own lock.
BAILEYS_DIR := tests/baileys
BAILEYS_STAMP := $(BAILEYS_DIR)/node_modules/.npm-install-done
SCREENSHOTS := $(CURDIR)/test-output/screenshots
NEXTEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help run deps test-deps ui lint test test-rust test-ui test-fuzz test-gowa test-sim-conformance package clean bindings openapi bench

help:
	@echo "make run      install what is missing, build the UI, start the app"
	@echo "make test     install what is missing, then every check and test"
	@echo "make package  build a .deb with the Tauri bundler"
	@echo "make lint     formatting and lints only"
	@echo "make bench    device service benchmark against the loopback simulator"

## Installing ---------------------------------------------------------------

# Installs only the Debian packages that are not installed yet; `apt-get
# update` runs once, and only when something is missing.
define install_debs
	missing=""; \
	for pkg in $(1); do \
		dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q; \
		$(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

deps: $(UI_STAMP)
	@$(call install_debs,$(APP_DEBS))
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }

$(UI_STAMP): ui/package.json ui/package-lock.json
	@command -v npm >/dev/null || { $(call install_debs,nodejs npm); }
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("Node.js >= 20.19 is needed, found "+process.version); process.exit(1) }'
	@# Not `npm ci`: the lock cannot list the Tauri CLI's binaries for other
	@# platforms (the registry reachable here does not serve them), and `npm ci`
	@# refuses such a lock. `--no-save` still installs exactly the locked versions.
	npm --prefix ui install --no-save --no-audit --no-fund
	@touch $@

$(BAILEYS_STAMP): $(BAILEYS_DIR)/package.json $(BAILEYS_DIR)/package-lock.json
	@command -v npm >/dev/null || { $(call install_debs,nodejs npm); }
	npm --prefix $(BAILEYS_DIR) install --no-save --no-audit --no-fund
	@touch $@

test-deps: deps $(FUZZ_STAMP) $(BAILEYS_STAMP)
	@$(call install_debs,$(TEST_DEBS))
	@tauri-driver --help >/dev/null 2>&1 || cargo install tauri-driver --locked --version $(TAURI_DRIVER_VERSION)

$(FUZZ_STAMP):
	@$(call install_debs,python3-venv)
	rm -rf $(FUZZ_VENV)
	python3 -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check schemathesis==$(SCHEMATHESIS_VERSION) \
		$(GOWA_PY_PACKAGES)
	@touch $@

## Building and running -----------------------------------------------------

ui: $(UI_STAMP)
	npm --prefix ui run build

run: deps ui
	cargo run --bin wa-device-admin

# The Tauri CLI runs `beforeBuildCommand` in the frontend folder; naming it
# keeps the CLI from guessing.
package: deps
	cd $(CURDIR) && TAURI_FRONTEND_PATH=$(CURDIR)/ui TAURI_APP_PATH=$(CURDIR) ui/node_modules/.bin/tauri build --bundles deb
	@echo "Package: $$(ls -1 target/release/bundle/deb/*.deb)"

## Checking -----------------------------------------------------------------

lint: ui
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	npm --prefix ui run check
	npm --prefix ui run format:check

test-ui: $(UI_STAMP)
	npm --prefix ui test

# Every Rust test of the workspace, inside a desktop session (Xvfb, D-Bus,
# unlocked Secret Service): the keyring tests and the GUI suite need it. The
# end-to-end suite drives the app against the loopback simulator, so the app
# is built with the test-only `simulator` feature here (a unit test checks
# that the default build never reaches the feature it enables).
TEST_FEATURES := --features wa-device-admin/simulator
test-rust: ui
	rm -rf $(SCREENSHOTS)
ifeq ($(NEXTEST),yes)
	tests/desktop-session.sh cargo nextest run --workspace --locked --no-fail-fast $(TEST_FEATURES)
else
	tests/desktop-session.sh cargo test --workspace --locked --no-fail-fast $(TEST_FEATURES)
endif

# Schemathesis against `wa-device-admin serve` (simulator build, talking to
# the wa-sim binary, never to WhatsApp): no 5xx, no crash, clean SIGTERM.
# `cargo test --no-run` with the test features builds both binaries with the
# same feature set as test-rust, so after test-rust it compiles nothing.
test-fuzz: $(FUZZ_STAMP)
	cargo test --workspace --locked --no-run $(TEST_FEATURES) >/dev/null
	tests/desktop-session.sh tests/fuzz-api.sh $(FUZZ_VENV)/bin/st \
		target/debug/wa-device-admin target/debug/wa-sim \
		--max-examples $(FUZZ_EXAMPLES) --phases examples,coverage,fuzzing

# go-whatsapp-web-multidevice (GOWA) compatibility, against `serve` and the
# wa-sim binary on 127.0.0.1: GOWA's own device-route schemas (vendored in
# tests/gowa/) against our answers and docs/openapi.json, then a typed client
# written from GOWA's document through every device and /app/* call. The
# same build as test-fuzz; both scripts run, the target fails if either does.
test-gowa: $(FUZZ_STAMP)
	cargo test --workspace --locked --no-run $(TEST_FEATURES) >/dev/null
	status=0; \
	tests/desktop-session.sh $(FUZZ_VENV)/bin/python tests/gowa/contract.py --bin-dir target/debug || status=1; \
	tests/desktop-session.sh $(FUZZ_VENV)/bin/python tests/gowa/client.py --bin-dir target/debug || status=1; \
	exit $$status

# Baileys, an independent client, through every linked-device flow against
# the wa-sim binary (loopback only) at 0 and 30 ms of latency; prints each
# flow's time. Alone: `make test-sim-conformance`.
test-sim-conformance: $(BAILEYS_STAMP)
	@# The same build as test-rust and test-fuzz (the workspace's feature
	@# set), so after them nothing is compiled again.
	cargo test --workspace --locked --no-run $(TEST_FEATURES) >/dev/null
	node $(BAILEYS_DIR)/conformance.mjs --sim target/debug/wa-sim

test: test-deps ui lint test-ui test-rust test-fuzz test-gowa test-sim-conformance
	@echo
	@echo "All checks passed. Screenshots of the end-to-end suite: $(SCREENSHOTS)"
	@ls -1 $(SCREENSHOTS)

clean:
	cargo clean
	rm -rf ui/dist ui/node_modules $(BAILEYS_DIR)/node_modules test-output

# Rewrites ui/src/lib/bindings.ts from the Rust types (a test checks it).
bindings: ui
	WA_UPDATE_BINDINGS=1 cargo test --lib -p wa-device-admin bindings

# Rewrites docs/openapi.json from the API code (a test checks it).
openapi:
	WA_UPDATE_OPENAPI=1 cargo test --lib -p wa-device-api openapi

# Benchmark of the device service against the loopback simulator (a program
# that prints figures; nothing in it is a pass/fail timing). BENCH_N lists the
# device counts for the start-up restore measurement.
BENCH_N ?= 1,100,1000
bench: test-deps
	tests/desktop-session.sh cargo run --release -p wa-device-core --example bench -- $(BENCH_N)

# Entry points. `make demo` and `make test` work on a fresh machine: they add
# the wasm32-wasip2 target when it is missing and build what they need.
.PHONY: demo test lint plugins foreign setup bench bench-http bench-adapters bench-swap bench-dashboard bench-postgres clean-demo api-fuzz openapi schema

CARGO ?= cargo

setup:
	@scripts/setup.sh

plugins: setup
	cd plugins && $(CARGO) build --release --target wasm32-wasip2

# The JavaScript and Python adapters (plugins/js, plugins/python), built with
# toolchains the script installs, pinned, under target/foreign/.
foreign:
	scripts/build-foreign-adapters.sh

# Build the plugins and the engine, then run the order-fulfillment demo:
# a saga through WASM adapters, a crash mid-step, and the resume.
demo: plugins
	$(CARGO) build -p weft
	scripts/demo.sh

# Every test: model, store (sled and in-memory), runtime, core, and the
# end-to-end suite (which builds the plugins once, the JavaScript and Python
# adapters with their pinned toolchains, and drives the binary); the
# plugins' own unit tests;
# then schemathesis against a running server and api/openapi.json, and the
# JSON Schemas against the examples with an independent validator.
test: setup
	$(CARGO) test --workspace
	cd plugins && $(CARGO) test --workspace
	scripts/api-fuzz.sh
	scripts/check-schemas.sh

# Schemathesis alone (WEFT_FUZZ_EXAMPLES=500 for a longer run).
api-fuzz: setup
	scripts/api-fuzz.sh

# Writes schema/*.schema.json anew from the process and bindings types.
schema:
	WEFT_BLESS=1 $(CARGO) test -p weft-model --test schema

# Writes api/openapi.json anew from the server's annotations.
openapi:
	WEFT_BLESS=1 $(CARGO) test -p weft-server --test openapi

# Formatting and clippy on both workspaces, warnings as errors.
lint: setup
	$(CARGO) fmt --all -- --check
	cd plugins && $(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd plugins && $(CARGO) clippy --target wasm32-wasip2 --all-targets -- -D warnings

# The benchmark, in release mode (the figures in README.md come from here).
bench: plugins
	$(CARGO) build --release -p weft
	env -u RUST_BACKTRACE target/release/weft bench

# The saga3 workload over HTTP against a weft serve child (README, Benchmark).
bench-http: plugins
	$(CARGO) build --release -p weft
	env -u RUST_BACKTRACE target/release/weft bench http

# Hot swaps under a steady load of 1,000 invocations/s (README, Benchmark).
bench-swap: plugins
	$(CARGO) build --release -p weft
	env -u RUST_BACKTRACE target/release/weft bench swap

# The PostgreSQL store alone (batches of 1, 16, 256), and saga3 over HTTP on
# sled and on 1, 2 and 3 nodes sharing a throwaway PostgreSQL (README).
bench-postgres: plugins setup
	$(CARGO) build --release -p weft
	scripts/bench-postgres.sh

# The dashboard's pages with 100,000 instances in the store (README, Benchmark).
bench-dashboard: plugins
	$(CARGO) build --release -p weft
	env -u RUST_BACKTRACE target/release/weft bench dashboard

# One invocation of a Rust, a JavaScript and a Python adapter side by side,
# and one HTTP-adapter call to a loopback service (README, Benchmark).
bench-adapters: plugins foreign
	$(CARGO) build --release -p weft
	env -u RUST_BACKTRACE target/release/weft bench adapters

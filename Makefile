# The README's two commands: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON := .venv/bin/python

.PHONY: run test test-cuda bench bench-memory bench-ui bench-latency screenshots bootstrap bootstrap-test fixtures build lint fmt clean-fixtures fuzz

# `make run` and `make test` build with the same (dev) profile, so whichever comes second
# reuses every compiled dependency of the first (README, "Build once").
run: bootstrap
	cargo run --bin convscope --

test: bootstrap-test fixtures
	cargo test --workspace --all-targets

# The engine and the CLI on cuda:0 (a third of the parity suite within 1e-3, the device switch,
# classify/export/gradients --device cuda); each test says "skipped" where there is no GPU.
test-cuda: bootstrap-test fixtures
	cargo test -p convscope-core --test cuda -- --ignored --nocapture --test-threads=1
	cargo test -p convscope --test cuda -- --ignored --nocapture

# convscope against PyTorch on the same libtorch, interleaved; a benchmark, never a test.
bench: bootstrap
	cargo run --release -- bench $(BENCH_ARGS)

# Peak memory of keeping every output (vgg19, efficientnet_b7), one fresh process per case.
bench-memory: bootstrap
	cargo run --release -- bench --memory $(BENCH_ARGS)

# The explorer's CPU time per frame on its heaviest views (release build, headless).
bench-ui: bootstrap
	cargo bench -p convscope-app --bench ui_frames

# From an image asked for to everything on screen: the app headless and in a real window
# (Xvfb's, software-rendered, where there is no display), beside the engine and PyTorch.
bench-latency: bootstrap
	cargo build --release --bin convscope
	if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || ! command -v xvfb-run >/dev/null; then \
		cargo bench -p convscope-app --bench latency; \
	else \
		xvfb-run -a -s "-screen 0 1600x1000x24" cargo bench -p convscope-app --bench latency; \
	fi

# The README's pictures, rendered headless from the real app (wgpu; Mesa's software Vulkan
# where there is no GPU) into screenshots/.
screenshots: bootstrap
	cargo test -p convscope-app --test screenshots -- --ignored --test-threads=1 --nocapture

# The fuzz targets in turn, FUZZ_SECONDS each (default 600); needs `cargo install cargo-fuzz`.
fuzz: bootstrap
	fuzz/run.sh $(FUZZ_TARGETS)

bootstrap:
	@scripts/bootstrap.sh

bootstrap-test:
	@scripts/bootstrap.sh test

# Reference outputs from the venv's PyTorch; rebuilt only when the script changes.
fixtures: bootstrap-test
	$(PYTHON) tests/fixtures/make_fixtures.py --out target/fixtures
	$(PYTHON) tests/fixtures/make_attribution_fixtures.py --out target/fixtures/attribution --parity target/fixtures
	$(PYTHON) tests/fixtures/make_featvis_fixtures.py --out target/fixtures/featvis

build: bootstrap
	cargo build --workspace

lint: bootstrap
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean-fixtures:
	rm -rf target/fixtures

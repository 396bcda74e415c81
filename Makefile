# amt-agent — see README.md. Everything CI runs is `make test`.
CARGO ?= cargo
RELEASE := target/release

.PHONY: build run test lint peer-deps rps-peer-deps unit bench clean

build:
	$(CARGO) build --release --bins

# amtinfo of a simulated vPro machine, with nothing but this repository.
run: build
	$(RELEASE)/amt-agent --device sim amtinfo --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Intel's wsman-messages and xml2js for the WS-MAN peer test (tests/peer.rs), pinned by the
# committed lock file and installed into tests/peer/node_modules only.
peer-deps:
	npm ci --prefix tests/peer --no-audit --no-fund

# The RPS test peer (tests/rps_peer, Node): Intel's wsman-messages, ws, xml2js at the locked versions.
# Without node the RPS end-to-end tests print `skipped:` and pass.
rps-peer-deps:
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/rps_peer --no-audit --no-fund; \
	else echo "rps-peer-deps: npm not found; the RPS end-to-end tests will be skipped"; fi

unit: rps-peer-deps
	$(CARGO) test --all-targets

test: lint peer-deps unit

# A benchmark, not a test: prints one report and writes docs/performance.md.
bench: build
	$(CARGO) run --release --example bench

clean:
	$(CARGO) clean

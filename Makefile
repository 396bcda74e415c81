# amt-agent — see README.md. Everything CI runs is `make test`.
CARGO ?= cargo
RELEASE := target/release

.PHONY: build run test lint peer-deps rps-peer-deps unit bench clean assets deb rpm lintian package-test

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

# Packages (README.md "Packages"): man pages and completions, then .deb / .rpm in target/.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEBS := target/debian/amt-agent_$(VERSION)-1_$(ARCH).deb target/debian/amt-sim_$(VERSION)-1_$(ARCH).deb
CARGO_DEB_VERSION := 3.8.0
CARGO_GENERATE_RPM_VERSION := 0.21.1

# Man pages (clap_mangen) and bash/zsh/fish completions (clap_complete) into target/assets.
assets:
	$(CARGO) run --quiet --example gen-assets -- target/assets

deb: build assets
	$(CARGO) deb --version >/dev/null 2>&1 || \
	  $(CARGO) install --locked --version $(CARGO_DEB_VERSION) cargo-deb
	$(CARGO) deb --no-build --variant agent --output target/debian/
	$(CARGO) deb --no-build --variant sim --output target/debian/

rpm: build assets
	$(CARGO) generate-rpm --version >/dev/null 2>&1 || \
	  $(CARGO) install --locked --version $(CARGO_GENERATE_RPM_VERSION) cargo-generate-rpm
	$(CARGO) generate-rpm
	$(CARGO) generate-rpm --variant sim

# Both .debs, lintian-clean (overrides, each with its reason: packaging/lintian-overrides).
lintian: deb
	command -v lintian >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends lintian >/dev/null; }
	lintian --fail-on error,warning --display-info $(DEBS)

# CI: the .deb lintian-clean, installed into a clean debootstrapped Debian 12 root and run there.
package-test: lintian
	packaging/chroot-test target/debian/amt-agent_$(VERSION)-1_$(ARCH).deb

clean:
	$(CARGO) clean

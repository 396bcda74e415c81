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

# Fuzzing (docs/robustness.md). Not part of `make test`. cargo-fuzz needs nightly-only rustc flags
# (-Zsanitizer, -Cpasses=sancov-module); the stable toolchain accepts them under RUSTC_BOOTSTRAP=1.
# fuzz/ is its own workspace, so none of this touches the main build or its lock file.
FUZZ_TARGETS := amthi_reply apf_message apf_mux http_response http_request digest wsman_envelope simsock_frames
FUZZ_SMOKE_SECS ?= 6
FUZZ_SECS ?= 600
FUZZ_ENV := RUSTC_BOOTSTRAP=1
# No sanitizer: the parsers are safe Rust, where ASan finds nothing a panic would not, at twice
# the build time and a third of the speed. Debug assertions on: integer overflow is a finding.
FUZZ_FLAGS := --sanitizer none --debug-assertions
FUZZ_RUN := $(FUZZ_ENV) $(CARGO) fuzz run $(FUZZ_FLAGS)

.PHONY: fuzz-deps fuzz-seeds fuzz-build fuzz-smoke fuzz

fuzz-deps:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz

# Seeds into fuzz/corpus/<target>/ (gitignored): fixtures from ../shared/fixtures, plus AMTHI,
# APF and frame bytes from the crate's encoders (examples/fuzz_seeds.rs).
fuzz-seeds:
	$(CARGO) run --quiet --example fuzz_seeds -- fuzz/corpus

fuzz-build: fuzz-deps
	$(FUZZ_ENV) $(CARGO) fuzz build $(FUZZ_FLAGS)

# Every target for FUZZ_SMOKE_SECS seconds (about a minute in all). Logs: fuzz/artifacts/<t>.log.
fuzz-smoke: fuzz-build fuzz-seeds
	@mkdir -p fuzz/artifacts; for t in $(FUZZ_TARGETS); do \
	  log=fuzz/artifacts/$$t.log; \
	  if ! $(FUZZ_RUN) $$t -- -max_total_time=$(FUZZ_SMOKE_SECS) -timeout=10 -print_final_stats=1 >$$log 2>&1; then \
	    tail -n 40 $$log; echo "fuzz $$t FAILED (full log: $$log)"; exit 1; \
	  fi; \
	  echo "fuzz $$t: $$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' $$log)"; \
	done

# Long runs: FUZZ_SECS (default 600) per target; `make fuzz FUZZ_TARGETS=digest` for one.
fuzz: fuzz-build fuzz-seeds
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t ($(FUZZ_SECS)s)"; \
	  $(FUZZ_RUN) $$t -- -max_total_time=$(FUZZ_SECS) -timeout=10 -print_final_stats=1; \
	done

# amt-agent — see README.md. CI (.ci/run) runs `make test`, `make test-windows`, `make fuzz-smoke`,
# `make package-test`.
CARGO ?= cargo
RELEASE := target/release

.PHONY: build run test lint self-contained layers peer-deps rps-peer-deps unit bench clean assets sim-ca sim-rsa-pool deb rpm lintian package-test
.PHONY: windows-deps windows msi wine-shim test-windows

build:
	$(CARGO) build --release --bins

# amtinfo of a simulated vPro machine, with nothing but this repository.
run: build
	$(RELEASE)/amt-agent --device sim amtinfo --all

lint: self-contained layers
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	@if rustup target list --installed 2>/dev/null | grep -qx $(WIN_TARGET); then \
	  $(CARGO) clippy --target $(WIN_TARGET) --all-targets -- -D warnings; \
	elif [ -n "$$CI" ]; then \
	  echo "error: the $(WIN_TARGET) target is not installed"; echo "help: make windows-deps"; exit 1; \
	else echo "lint: $(WIN_TARGET) not installed, Windows clippy skipped (make windows-deps installs it)"; fi
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --locked --manifest-path fuzz/Cargo.toml --bins -- -D warnings

# A clone must test on its own: nothing in the repository may reach outside it for fixtures or
# references (they live in tests/fixtures, each folder with its provenance). The pattern is spelled
# with a bracket so this rule does not match itself.
self-contained:
	@if grep -rIn --exclude-dir=.git --exclude-dir=target --exclude-dir=node_modules \
	    --exclude-dir=corpus --exclude-dir=artifacts -e '\.\./shar[e]d' . ; then \
	  echo "error: the lines above refer to a folder outside the repository"; \
	  echo "help: copy the file into tests/fixtures/ (with its provenance in that folder's README)"; \
	  exit 1; fi

# The layering of src/lib.rs's "# Layers" block: no module imports a layer above it (heci never
# imports sim). A std-only program built with rustc, with its own tests.
layers:
	rustfmt --edition 2021 --check scripts/check_layers.rs
	@mkdir -p target
	@rustc --edition 2021 --test -o target/check-layers-test scripts/check_layers.rs
	@target/check-layers-test -q >/dev/null
	@rustc --edition 2021 -O -o target/check-layers scripts/check_layers.rs
	target/check-layers src

# Intel's wsman-messages and xml2js for the WS-MAN peer test (tests/peer.rs), pinned by the
# committed lock file and installed into tests/peer/node_modules only.
peer-deps:
	npm ci --prefix tests/peer --no-audit --no-fund

# The RPS test peer (tests/rps_peer, Node): Intel's wsman-messages, ws, xml2js at the locked versions.
# Without node the RPS end-to-end tests print `skipped:` and pass.
rps-peer-deps:
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/rps_peer --no-audit --no-fund; \
	else echo "rps-peer-deps: npm not found; the RPS end-to-end tests will be skipped"; fi

# Every target with tests (the library's unit tests, tests/*.rs); the examples are built, not run
# (Cargo.toml: they are tools without tests).
unit: rps-peer-deps
	$(CARGO) test

test: lint peer-deps unit

# Windows (README.md "Windows"): amt-agent.exe cross-built with Debian's mingw-w64 linker
# (.cargo/config.toml), an MSI built with wixl, and the .exe tested under Wine.
WIN_TARGET := x86_64-pc-windows-gnu
WIN_EXE := target/$(WIN_TARGET)/release/amt-agent.exe
WINE_SHIM := target/wine/bcryptprimitives.dll

# What the Windows build and its tests need (Debian packages; run as root), as .ci/run installs.
windows-deps:
	rustup target list --installed | grep -qx $(WIN_TARGET) || rustup target add $(WIN_TARGET)
	@need=""; \
	command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need="$$need gcc-mingw-w64-x86-64"; \
	[ -x /usr/lib/wine/wine64 ] || need="$$need wine64"; \
	command -v msiinfo >/dev/null 2>&1 || need="$$need msitools"; \
	command -v wixl >/dev/null 2>&1 || need="$$need wixl"; \
	if [ -n "$$need" ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $$need; fi

windows:
	$(CARGO) build --release --target $(WIN_TARGET) --bin amt-agent

# The MSI: amt-agent.exe, the Windows agent.toml, the service (stopped, manual start); wixl and
# msibuild, see packaging/windows/build-msi.
MSI = target/amt-agent-$(VERSION)-x64.msi
msi: windows
	packaging/windows/build-msi $(VERSION) $(WIN_EXE) $(MSI)
	@echo "$(MSI)"

# A Wine test fixture only (tests/wine/bcryptprimitives.c says why); never in the MSI.
wine-shim: $(WINE_SHIM)
$(WINE_SHIM): tests/wine/bcryptprimitives.c tests/wine/bcryptprimitives.def
	@mkdir -p target/wine
	x86_64-w64-mingw32-gcc -O2 -shared -o $@ $^ -ladvapi32

# The .exe under Wine against the Linux simulator, the RPS peer and the MSI (tests/windows.rs).
# One release cross-build serves every test; Wine gets its own prefix under target/wine.
test-windows: msi wine-shim rps-peer-deps
	AMT_AGENT_WINDOWS_EXE=$(CURDIR)/$(WIN_EXE) AMT_AGENT_WINE_SHIM=$(CURDIR)/$(WINE_SHIM) \
	AMT_AGENT_MSI=$(CURDIR)/$(MSI) $(CARGO) test --test windows -- --include-ignored

# A benchmark, not a test: prints one report and writes docs/performance.md.
# With the Windows build under Wine when it can be built here (make windows-deps).
bench: build
	@if rustup target list --installed 2>/dev/null | grep -qx $(WIN_TARGET) && [ -x /usr/lib/wine/wine64 ]; then \
	  $(MAKE) --no-print-directory msi wine-shim && \
	  AMT_AGENT_WINDOWS_EXE=$(CURDIR)/$(WIN_EXE) AMT_AGENT_WINE_SHIM=$(CURDIR)/$(WINE_SHIM) \
	  AMT_AGENT_MSI=$(CURDIR)/$(MSI) $(CARGO) run --release --example bench; \
	else $(CARGO) run --release --example bench; fi

# Packages (README.md "Packages"): man pages and completions, then .deb / .rpm in target/.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEBS := target/debian/amt-agent_$(VERSION)-1_$(ARCH).deb target/debian/amt-sim_$(VERSION)-1_$(ARCH).deb
CARGO_DEB_VERSION := 3.8.0
CARGO_GENERATE_RPM_VERSION := 0.21.1

# Man pages (clap_mangen) and bash/zsh/fish completions (clap_complete) into target/assets.
assets:
	$(CARGO) run --quiet --example gen-assets -- target/assets

# A new fixed top (test root, ROM CA and its key) for the simulator's AMT TLS chain, into
# src/sim/ca/ (commit the three files together).
sim-ca:
	$(CARGO) run --quiet --example sim-ca

# A new pool of RSA-2048 test keys the simulator hands out for GenerateKeyPair
# (src/sim/amt/classes/keystore.rs): its crypto library makes no RSA keys.
sim-rsa-pool:
	for i in 1 2 3 4 5 6 7 8; do openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048; done > src/sim/ca/rsa-key-pool.pem

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

# Both .debs, lintian-clean (overrides, each with its reason: packaging/lintian-overrides.{agent,sim}).
lintian: deb
	command -v lintian >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends lintian >/dev/null; }
	lintian --fail-on error,warning --display-info $(DEBS)

# CI: the .deb lintian-clean, installed into a clean debootstrapped Debian 12 root and run there.
package-test: lintian
	packaging/chroot-test target/debian/amt-agent_$(VERSION)-1_$(ARCH).deb

clean:
	$(CARGO) clean

# Fuzzing (docs/robustness.md). fuzz/ is its own workspace (own Cargo.lock), so none of this
# touches the main build. No cargo-fuzz and no nightly: a plain `cargo build` of fuzz/ with the
# RUSTFLAGS cargo-fuzz 0.13 passes for `--sanitizer none --debug-assertions` (all stable rustc
# flags), and the libFuzzer binaries run directly. `--target` keeps the flags off build scripts
# and proc-macros, as cargo-fuzz does. The profile is fuzz/Cargo.toml's [profile.release]
# (cargo-fuzz's: opt-level 3, one codegen unit; docs/robustness.md says why not a cheaper one).
# No sanitizer: the parsers are safe Rust, where ASan finds nothing a panic would not. Debug
# assertions on: integer overflow is a finding.
FUZZ_TARGETS := amthi_reply apf_message apf_mux http_response http_request digest wsman_envelope \
  simsock_frames rps_message rps_session provisioning_cert setup_bin profile
FUZZ_SMOKE_SECS ?= 6
FUZZ_SECS ?= 600
FUZZ_TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_TARGET_DIR ?= fuzz/target
FUZZ_BIN = $(FUZZ_TARGET_DIR)/$(FUZZ_TRIPLE)/release
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
  -Cllvm-args=-sanitizer-coverage-stack-depth --cfg fuzzing -Cdebug-assertions
# libFuzzer options for every run: a 10 s hang is a finding; stats at the end for the docs.
FUZZ_OPTS := -timeout=10 -print_final_stats=1

.PHONY: fuzz-seeds fuzz-build fuzz-smoke fuzz

# Seeds into fuzz/corpus/<target>/ (gitignored): fixtures from tests/fixtures, plus AMTHI,
# APF, frame, certificate and setup.bin bytes from the crate's encoders (examples/fuzz_seeds.rs).
fuzz-seeds:
	$(CARGO) run --quiet --example fuzz_seeds -- fuzz/corpus

# libfuzzer-sys compiles libFuzzer (C++) with the cc crate: needs g++. --locked: when a dependency
# of the main crate changes, refresh fuzz/Cargo.lock (docs/robustness.md, "Lock file").
fuzz-build:
	RUSTFLAGS="$(FUZZ_RUSTFLAGS)" $(CARGO) build --locked --release --bins \
	  --manifest-path fuzz/Cargo.toml --target $(FUZZ_TRIPLE) --target-dir $(FUZZ_TARGET_DIR)

# Every target for FUZZ_SMOKE_SECS seconds (about a minute and a half in all), in CI after
# `make test`. A crash fails the target with the log's tail; logs: fuzz/artifacts/<t>.log,
# crash inputs: fuzz/artifacts/<t>/.
fuzz-smoke: fuzz-build fuzz-seeds
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/artifacts/$$t fuzz/corpus/$$t; log=fuzz/artifacts/$$t.log; \
	  if ! $(FUZZ_BIN)/$$t -max_total_time=$(FUZZ_SMOKE_SECS) $(FUZZ_OPTS) \
	      -artifact_prefix=fuzz/artifacts/$$t/ fuzz/corpus/$$t >$$log 2>&1; then \
	    tail -n 40 $$log; echo "fuzz $$t FAILED (full log: $$log)"; exit 1; \
	  fi; \
	  echo "fuzz $$t: $$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' $$log)," \
	    "$$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' $$log | tail -n 1)"; \
	done

# Long runs: FUZZ_SECS (default 600) per target; `make fuzz FUZZ_TARGETS=digest` for one.
fuzz: fuzz-build fuzz-seeds
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t ($(FUZZ_SECS)s)"; mkdir -p fuzz/artifacts/$$t fuzz/corpus/$$t; \
	  $(FUZZ_BIN)/$$t -max_total_time=$(FUZZ_SECS) $(FUZZ_OPTS) \
	    -artifact_prefix=fuzz/artifacts/$$t/ fuzz/corpus/$$t; \
	done

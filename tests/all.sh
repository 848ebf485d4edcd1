#!/usr/bin/env bash
# Every test of the project, from a fresh Debian 12 machine: installs what it needs, then
# runs formatting and lint checks, the no_std build of the core, the unit and integration
# tests (real kernels, real oxenstored, the libxen-dev header checks), the PV test kernel's
# own tests, a short run of every fuzz target, and the real-Xen harness (Xen 4.17 under QEMU
# emulation: pvbuild boots Debian's kernel and the project's test kernel, its layout is
# compared with libxenguest's, every step of create is failed in turn, 32-bit guests are
# refused). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
t0=$SECONDS
step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - t0))" "$*"; }

step "install dependencies"
bash tests/xen/install-deps.sh
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "no_std core for x86_64-unknown-none (with and without alloc)"
# (Profile nostd, Cargo.toml: the dev profile with its dependencies at opt-level 1, not 3:
# 18 s cold against 45 s.)
cargo build -p pvbuild-core --target x86_64-unknown-none --profile nostd
cargo build -p pvbuild-core --target x86_64-unknown-none --profile nostd --no-default-features

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

# The PV test kernel first: builder-core's tests parse it (tests/features_real.rs).
step "PV test kernel: build and unit tests"
(cd tests/pv-test-kernel && env -u CARGO_TARGET_DIR cargo build --release &&
    env -u CARGO_TARGET_DIR cargo test --lib --target x86_64-unknown-linux-gnu)

step "cargo test"
# The bench crate has no tests: its benches and examples are compiled by clippy above, and
# building their dev-dependencies (criterion, the C libraries) again here cost CI's budget.
cargo test --workspace --exclude pvbuild-bench

step "fuzz: a short run of every target"
# 5 s per target in CI (20 targets, two at a time; building them takes longer): the longer runs are opt-in
# (docs/fuzzing.md).
FUZZ_SECONDS=${FUZZ_SECONDS:-5} bash tests/fuzz-short.sh

step "real Xen harness"
# The whole of this script must end within CI's 60 minutes: the harness gets what is left of
# 59 (HARNESS_BUDGET, seconds), and stops with a readable failure when it is spent.
HARNESS_BUDGET=${HARNESS_BUDGET:-$((3540 - (SECONDS - t0)))} bash tests/xen/run.sh


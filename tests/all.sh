#!/usr/bin/env bash
# Every test of the project, from a fresh Debian 12 machine: installs what it needs, then
# runs formatting and lint checks, the no_std build of the core, the unit/integration tests,
# short fuzz runs, and the real-Xen harness (Xen 4.17 under QEMU emulation).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "install dependencies"
bash tests/xen/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "no_std core for x86_64-unknown-none (with and without alloc)"
cargo build -p pvbuild-core --target x86_64-unknown-none
cargo build -p pvbuild-core --target x86_64-unknown-none --no-default-features

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "real Xen harness"
bash tests/xen/run.sh

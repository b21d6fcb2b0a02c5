#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs missing test dependencies, checks formatting
# and lints, then runs every test (unit, conformance, and end-to-end with skopeo and umoci).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

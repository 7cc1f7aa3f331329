#!/usr/bin/env bash
# Every test, on a clean clone with nothing installed by hand. The README's
# second set-up command; .ci/run calls exactly this.
#
# 1. the reference (python-passcrow 0.0.7 from PyPI) in target/ref-venv;
# 2. formatting and clippy (warnings are errors);
# 3. cargo test with every feature: unit, property, vector, interop, server,
#    bad-input tests;
# 4. every scripts/test.d/*.sh in name order (C ABI, bindings, ...), each a
#    self-contained step that installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "reference venv (python-passcrow 0.0.7)"
scripts/ref-venv.sh >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets --all-features -- -D warnings"
cargo clippy --all-targets --all-features -- -D warnings

step "cargo test --all-features"
cargo test --all-features -- --test-threads="${PASSCROW_TEST_THREADS:-2}"

for s in scripts/test.d/*.sh; do
    [ -e "$s" ] || continue
    step "$s"
    bash "$s"
done

step "all tests passed"

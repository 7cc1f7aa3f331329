#!/usr/bin/env bash
# Every test, on a clean clone with nothing installed by hand. The README's
# second set-up command; .ci/run calls exactly this.
#
# 1. the reference (python-passcrow 0.0.7 from PyPI) in target/ref-venv;
# 2. formatting and clippy (warnings are errors);
# 3. cargo test with every feature: unit, property, vector, interop, server,
#    bad-input tests (the storage conformance and multi-instance tests start
#    a real PostgreSQL: scripts/pg-test-cluster.sh);
# 3b. the protocol test files again with every server they start on its own
#    PostgreSQL database (PASSCROW_TEST_BACKEND=postgres, tests/common/
#    backend.rs), so both backends answer the same attacks;
# 4. the quickstart (the README's first command) must recover its secret;
# 5. every scripts/test.d/*.sh in name order (C ABI, bindings, ...), each a
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

step "the protocol tests again, each server on its own PostgreSQL database"
PASSCROW_TEST_BACKEND=postgres cargo test --all-features \
    --test server_http --test server_interop --test server_payments \
    --test server_guessing --test server_budgets --test server_connections \
    --test health_check --test server_totp --test server_delay \
    -- --test-threads="${PASSCROW_TEST_THREADS:-2}"

step "the README's first command: cargo run --features server --example quickstart"
out=$(cargo run -q --features server --example quickstart)
printf '%s\n' "$out" | tail -n 3
printf '%s\n' "$out" | grep -qx 'recovered secret: correct horse battery staple' \
    || { echo "quickstart did not recover its secret" >&2; exit 1; }

for s in scripts/test.d/*.sh; do
    [ -e "$s" ] || continue
    step "$s"
    bash "$s"
done

step "all tests passed"

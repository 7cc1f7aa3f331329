#!/usr/bin/env bash
# Ephemeral mode, ours against python-passcrow 0.0.7, side by side in one
# run: `protect -E` of a small file with two identities, then recovery from
# SERVER:USER_KEY (ask for the code, give it), both clients against one
# passcrow-server on loopback (release build, file delivery, rate limit
# off). Ours is the `passcrow` CLI; the reference is driven through
# tests/support/ref_client.py with its sleeps capped at 0.
#
# Usage: scripts/bench-ephemeral.sh [ROUNDS]        (default 3)
#   BENCH_ONE_CORE=1    pin both clients to one core (taskset -c 0)
#   BENCH_SEQUENTIAL=1  ours one derivation at a time (1 GiB mode)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
log() { printf 'bench-ephemeral: %s\n' "$*" >&2; }

log "building (release)"
cargo build --release --quiet --features server,cli --bin passcrow --bin passcrow-server
py=$(scripts/ref-venv.sh)
work=$(mktemp -d -t passcrow-bench-eph.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

target/release/passcrow-server init "$work/server" >/dev/null
cat >"$work/server.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$work/server"
rate_limit_burst = 0
# The load sends far more mail than a public server should: the
# server-wide e-mail budget is lifted for the run (each cycle has its own
# recipient, so the per-recipient budgets are not reached).
[outbound]
per_kind_per_hour = { email = 1000000000 }
[delivery]
file = "$work/codes.txt"
TOML
RUST_LOG=warn target/release/passcrow-server --config "$work/server.toml" >"$work/server.out" 2>"$work/server.err" &
pid=$!
for _ in $(seq 1 100); do [ -s "$work/server.out" ] && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/server.out")
[ -n "$url" ] || { cat "$work/server.err" >&2; exit 1; }
flags=()
[ -n "${BENCH_ONE_CORE:-}" ] && flags+=(--one-core)
[ -n "${BENCH_SEQUENTIAL:-}" ] && flags+=(--sequential)
log "$rounds rounds against $url"
"$py" scripts/bench_ephemeral.py --ours-cli target/release/passcrow \
    --ref-client tests/support/ref_client.py --server-url "$url" \
    --codes "$work/codes.txt" --work "$work" --rounds "$rounds" "${flags[@]}"

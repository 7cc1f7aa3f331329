#!/usr/bin/env bash
# Load benchmark: passcrow-server against the python-passcrow 0.0.7 server,
# same load, same machine, same run.
#
#   scripts/bench-server.sh
#
# 1. ours: 1,000,000 one-day escrows are stored first through the storage
#    layer (examples/bench_server.rs `fill`, 10,000 per transaction), then
#    passcrow-server (release build, rate limit off, file delivery) serves
#    BENCH_SECONDS of escrow -> verify -> recover cycles on BENCH_CONCURRENCY
#    loopback connections (1-day escrows paid free, a fresh identity per
#    cycle, every code read back from the delivery file and used).
# 2. the reference: its FileSystemStorage is filled the same way for at
#    most BENCH_REF_FILL_SECONDS (the table says how far it got), then its
#    Flask app (tests/support/ref_server.py, rate limit patched off) gets
#    the same load from the same generator.
# Prints a table (and the raw JSON lines). Bounded: about 4 minutes after
# the build. Knobs (environment): BENCH_SECONDS (20), BENCH_CONCURRENCY (4),
# BENCH_FILL (1000000), BENCH_REF_FILL_SECONDS (60), BENCH_DIR (a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${BENCH_SECONDS:-20}
conc=${BENCH_CONCURRENCY:-4}
fill=${BENCH_FILL:-1000000}
ref_fill_secs=${BENCH_REF_FILL_SECONDS:-60}

log() { printf 'bench-server: %s\n' "$*" >&2; }

log "building (release)"
cargo build --release --quiet --features server,testing --bin passcrow-server --example bench_server
bin=target/release
py=$(scripts/ref-venv.sh)

work=${BENCH_DIR:-$(mktemp -d -t passcrow-bench.XXXXXX)}
mkdir -p "$work"
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ -z "${BENCH_DIR:-}" ]; then
        log "removing $work"
        rm -rf "$work"
    fi
}
trap cleanup EXIT

wait_for() { # FILE: wait until it is non-empty
    for _ in $(seq 1 600); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    log "timed out waiting for $1"
    return 1
}

# --- ours -------------------------------------------------------------------
log "ours: storing $fill escrows through the storage layer"
"$bin/examples/bench_server" fill --data "$work/ours" --count "$fill" >"$work/ours-fill.json"
cat >"$work/ours.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$work/ours"
rate_limit_burst = 0
# The load sends far more mail than a public server should: the
# server-wide e-mail budget is lifted for the run (each cycle has its own
# recipient, so the per-recipient budgets are not reached).
[outbound]
per_kind_per_hour = { email = 1000000000 }
# The load makes far more free escrows than a day's default, on top of
# the escrows already stored.
[limits]
max_escrows = 100000000
max_free_escrows_per_day = 100000000
[delivery]
file = "$work/ours-codes.txt"
TOML
RUST_LOG=warn "$bin/passcrow-server" --config "$work/ours.toml" >"$work/ours.out" 2>"$work/ours.err" &
pids+=($!)
ours_pid=$!
wait_for "$work/ours.out"
url=$(sed -n 's/^listening on //p' "$work/ours.out")
log "ours: $secs s of load on $conc connections ($url)"
"$bin/examples/bench_server" load --url "$url" --codes "$work/ours-codes.txt" \
    --seconds "$secs" --concurrency "$conc" --label passcrow-server >"$work/ours-load.json"
kill -TERM "$ours_pid"
wait "$ours_pid" || true
ours_bytes=$(du -sb "$work/ours" | cut -f1)

# --- the reference ---------------------------------------------------------
log "reference: filling its storage for at most ${ref_fill_secs} s"
"$py" scripts/bench_server_ref.py --data "$work/ref" --seconds "$ref_fill_secs" \
    --count "$fill" >"$work/ref-fill.json"
"$py" tests/support/ref_server.py --data "$work/ref" --codes "$work/ref-codes.txt" \
    --port 0 --port-file "$work/ref.port" --no-rate-limit 2>"$work/ref.err" &
pids+=($!)
ref_pid=$!
wait_for "$work/ref.port"
log "reference: $secs s of load on $conc connections"
"$bin/examples/bench_server" load --url "http://127.0.0.1:$(cat "$work/ref.port")" \
    --codes "$work/ref-codes.txt" --seconds "$secs" --concurrency "$conc" \
    --label python-passcrow >"$work/ref-load.json"
kill -TERM "$ref_pid"
wait "$ref_pid" || true

# --- the table ---------------------------------------------------------------
python3 - "$work" "$ours_bytes" "$ref_fill_secs" <<'PY'
import json, sys
work, ours_bytes, ref_limit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
j = lambda n: json.load(open('%s/%s' % (work, n)))
of, ol, rf, rl = j('ours-fill.json'), j('ours-load.json'), j('ref-fill.json'), j('ref-load.json')
print()
print('escrow -> verify -> recover cycles, %d connections, %.0f s each, same generator'
      % (ol['concurrency'], ol['seconds']))
print('%-16s %12s %9s %8s %8s %10s %10s %10s %9s' % (
    'server', 'escrows held', 'req/s', 'p50 ms', 'p99 ms',
    'escrow p99', 'verify p99', 'recov p99', 'errors'))
for name, fill, load in (('passcrow-server', of, ol), ('python-passcrow', rf, rl)):
    print('%-16s %12d %9.0f %8.2f %8.2f %10.2f %10.2f %10.2f %9d' % (
        name, fill['escrows'], load['rps'], load['p50-ms'], load['p99-ms'],
        load['escrow']['p99-ms'], load['verify']['p99-ms'],
        load['recover']['p99-ms'], load['errors']))
print()
print('throughput ratio: %.1fx' % (ol['rps'] / max(rl['rps'], 1e-9)))
print('ours: %d escrows stored in %.1f s through the storage layer; %.0f bytes of disk per'
      ' escrow after the run (database + WAL, %d bytes)'
      % (of['escrows'], of['seconds'], ours_bytes / of['escrows'], ours_bytes))
print('reference: %d escrows stored in %.1f s (time limit %s s) through its storage layer;'
      ' %.0f bytes of disk per escrow' % (rf['escrows'], rf['seconds'], ref_limit,
                                         rf['disk-bytes'] / max(rf['escrows'], 1)))
print()
for n in ('ours-fill.json', 'ours-load.json', 'ref-fill.json', 'ref-load.json'):
    print('%s: %s' % (n, open('%s/%s' % (work, n)).read().strip()))
PY

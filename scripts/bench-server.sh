#!/usr/bin/env bash
# Load benchmark: passcrow-server against the python-passcrow 0.0.7 server,
# same load, same machine, same run.
#
#   scripts/bench-server.sh
#
# 1. ours: 1,000,000 one-day escrows are stored first through the storage
#    layer (examples/bench_server.rs `fill`, 10,000 per transaction), then
#    passcrow-server (release build, everything synced as in production,
#    file delivery) serves BENCH_SECONDS of escrow -> verify -> recover
#    cycles on each number of loopback connections in BENCH_CONCURRENCY
#    (1-day escrows paid free, a fresh identity per cycle, every code read
#    back from the delivery file and used), then as long of the policy
#    document alone (the HTTP ceiling: no storage, no crypto).
# 2. the reference: its FileSystemStorage is filled the same way for at
#    most BENCH_REF_FILL_SECONDS (the table says how far it got), then its
#    Flask app (tests/support/ref_server.py, rate limit patched off) gets
#    the same load from the same generator at each concurrency.
# The generator (examples/bench_server.rs, Rust, ureq, one thread and one
# keep-alive connection each) reports the cores it and the server used:
# on one machine, a generator near a full share would be the bottleneck.
# The limits switched off for the run are printed with the table.
# Prints a table (and the raw JSON lines). Bounded: about 8 minutes after
# the build for SQLite alone. Knobs (environment): BENCH_SECONDS (15),
# BENCH_CONCURRENCY ("4 16 64"), BENCH_FILL (1000000),
# BENCH_REF_FILL_SECONDS (60), BENCH_DIR (a temp dir), BENCH_DATABASE
# ("sqlite"; "postgres", or "sqlite postgres" for both in one run: ours on
# a throwaway PostgreSQL cluster on loopback, scripts/pg-test-cluster.sh,
# filled the same way; disk per escrow is then the database's size),
# BENCH_INSTANCES ("1 2": the numbers of instances run on the one
# PostgreSQL database; the generator spreads its connections over them),
# BENCH_PROFILE (set: a perf CPU profile of our server at each
# concurrency, summarised after the table).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${BENCH_SECONDS:-15}
concs=${BENCH_CONCURRENCY:-4 16 64}
fill=${BENCH_FILL:-1000000}
ref_fill_secs=${BENCH_REF_FILL_SECONDS:-60}
databases=${BENCH_DATABASE:-sqlite}
instance_counts=${BENCH_INSTANCES:-1 2}
for db in $databases; do
    case $db in
    sqlite | postgres) ;;
    *) echo "bench-server: BENCH_DATABASE takes sqlite and/or postgres, not '$db'" >&2; exit 2 ;;
    esac
done

log() { printf 'bench-server: %s\n' "$*" >&2; }

log "building (release)"
features=server,testing
[[ " $databases " == *" postgres "* ]] && features=server,testing,postgres
cargo build --release --quiet --features "$features" --bin passcrow-server --example bench_server
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
# One configuration per database and number of instances: sqlite-1, and
# with postgres in BENCH_DATABASE postgres-1, postgres-2 (BENCH_INSTANCES).
pg_url=""
if [[ " $databases " == *" postgres "* ]]; then
    log "ours: starting a throwaway PostgreSQL cluster"
    pg_out=$(bash scripts/pg-test-cluster.sh $$)
    pg_port=$(sed -n 's/^port=//p' <<<"$pg_out")
    PASSCROW_DATABASE_PASSWORD=$(cat "$(sed -n 's/^password_file=//p' <<<"$pg_out")")
    export PASSCROW_DATABASE_PASSWORD
    pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/psql | tail -n 1)")
    psql_() { PGPASSWORD=$PASSCROW_DATABASE_PASSWORD "$pg_bin/psql" -qAt -h 127.0.0.1 \
        -p "$pg_port" -U passcrow_test "$@"; }
    psql_ -d postgres -c "CREATE DATABASE bench"
    pg_url="postgres://passcrow_test@127.0.0.1:$pg_port/bench"
fi
configs=""
first=""
for db in $databases; do
    data="$work/ours-$db"
    url_opt=""
    db_line=""
    if [ "$db" = postgres ]; then
        url_opt="--database $pg_url"
        db_line="database = \"$pg_url\""
    fi
    log "ours ($db): storing $fill escrows through the storage layer"
    # shellcheck disable=SC2086
    "$bin/examples/bench_server" fill --data "$data" --count "$fill" $url_opt >"$work/ours-$db-fill.json"
    cat >"$work/ours-$db.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$data"
$db_line
# One address (the generator's) makes every connection and request: the
# per-address request rate and connection cap are off for the run.
rate_limit_burst = 0
max_connections_per_address = 0
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
# One file for every instance: each code is one O_APPEND write.
file = "$work/ours-codes.txt"
TOML
    counts=1
    [ "$db" = postgres ] && counts=$instance_counts
    for n in $counts; do
        cfg="$db-$n"
        configs="$configs $cfg"
        urls=""
        spids=""
        for i in $(seq 1 "$n"); do
            out="$work/ours-$cfg-$i.out"
            RUST_LOG=warn "$bin/passcrow-server" --config "$work/ours-$db.toml" \
                >"$out" 2>"$work/ours-$cfg-$i.err" &
            pids+=($!)
            spids="${spids:+$spids,}$!"
            # One at a time: the first to start against a new database
            # creates its schema.
            wait_for "$out"
            urls="${urls:+$urls,}$(sed -n 's/^listening on //p' "$out")"
        done
        for c in $concs; do
            log "ours ($cfg): $secs s of load on $c connections ($urls)"
            # The syncs the server makes during the load (fsync and
            # fdatasync system calls, counted by the kernel's tracepoints)
            # when perf can. (On PostgreSQL the database's processes sync,
            # not ours: not counted.)
            perf_pid=""
            if [ "$db" = sqlite ] && perf stat -e syscalls:sys_enter_fsync -- true >/dev/null 2>&1; then
                perf stat -x, -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync \
                    -p "$spids" -o "$work/ours-$cfg-syncs-$c.csv" -- sleep "$secs" &
                perf_pid=$!
            fi
            # BENCH_PROFILE=1: a CPU profile of the server during the load
            # (perf record, call graphs), summarised after the table.
            prof_pid=""
            if [ -n "${BENCH_PROFILE:-}" ]; then
                perf record -q -F 499 -g -p "$spids" -o "$work/ours-$cfg-perf-$c.data" \
                    -- sleep "$secs" 2>/dev/null &
                prof_pid=$!
            fi
            "$bin/examples/bench_server" load --url "$urls" --codes "$work/ours-codes.txt" \
                --seconds "$secs" --concurrency "$c" --label "passcrow-server ($cfg)" \
                --server-pid "$spids" >"$work/ours-$cfg-load-$c.json"
            [ -n "$perf_pid" ] && wait "$perf_pid" || true
            [ -n "$prof_pid" ] && wait "$prof_pid" || true
            if [ -z "$first" ]; then
                log "ours ($cfg): $secs s of the policy document alone on $c connections"
                "$bin/examples/bench_server" load --url "$urls" --codes "$work/ours-codes.txt" \
                    --seconds "$secs" --concurrency "$c" --label passcrow-server-policy \
                    --server-pid "$spids" --policy-only >"$work/ours-ceiling-$c.json"
            fi
        done
        first=${first:-$cfg}
        for p in ${spids//,/ }; do kill -TERM "$p"; done
        for p in ${spids//,/ }; do wait "$p" || true; done
    done
    if [ "$db" = postgres ]; then
        psql_ -d postgres -c "SELECT pg_database_size('bench')" >"$work/ours-$db-bytes"
    else
        du -sb "$data" | cut -f1 >"$work/ours-$db-bytes"
    fi
done

# --- the reference ---------------------------------------------------------
log "reference: filling its storage for at most ${ref_fill_secs} s"
"$py" scripts/bench_server_ref.py --data "$work/ref" --seconds "$ref_fill_secs" \
    --count "$fill" >"$work/ref-fill.json"
"$py" tests/support/ref_server.py --data "$work/ref" --codes "$work/ref-codes.txt" \
    --port 0 --port-file "$work/ref.port" --no-rate-limit 2>"$work/ref.err" &
pids+=($!)
ref_pid=$!
wait_for "$work/ref.port"
for c in $concs; do
    log "reference: $secs s of load on $c connections"
    "$bin/examples/bench_server" load --url "http://127.0.0.1:$(cat "$work/ref.port")" \
        --codes "$work/ref-codes.txt" --seconds "$secs" --concurrency "$c" \
        --label python-passcrow --server-pid "$ref_pid" >"$work/ref-load-$c.json"
done
kill -TERM "$ref_pid"
wait "$ref_pid" || true

if [ -n "${BENCH_PROFILE:-}" ]; then
    for cfg in $configs; do
        for c in $concs; do
            f="$work/ours-$cfg-perf-$c.data"
            [ -s "$f" ] || continue
            {
                echo "== where passcrow-server ($cfg) spends its CPU on $c connections (perf, self time by shared object, then by symbol)"
                perf report -i "$f" --stdio --no-children --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12 || true
                perf report -i "$f" --stdio --no-children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 || true
            } >"$work/ours-$cfg-profile-$c.txt"
        done
    done
fi

# --- the table ---------------------------------------------------------------
python3 - "$work" "$ref_fill_secs" "$configs" $concs <<'PY'
import json, os, sys
work, ref_limit, configs = sys.argv[1], sys.argv[2], sys.argv[3].split()
concs = [int(c) for c in sys.argv[4:]]
j = lambda n: json.load(open('%s/%s' % (work, n)))
rf = j('ref-fill.json')
db_of = lambda cfg: cfg.rsplit('-', 1)[0]
fills = {db_of(cfg): j('ours-%s-fill.json' % db_of(cfg)) for cfg in configs}
disk = {db: int(open('%s/ours-%s-bytes' % (work, db)).read().strip()) for db in fills}
ours = {(cfg, c): j('ours-%s-load-%d.json' % (cfg, c)) for cfg in configs for c in concs}
ceil = {c: j('ours-ceiling-%d.json' % c) for c in concs}
ref = {c: j('ref-load-%d.json' % c) for c in concs}
secs = ref[concs[0]]['seconds']
print()
print('escrow -> verify -> recover cycles, %.0f s each, same generator; cores used (of %d):'
      ' generator / our server processes / the whole machine (with a database\'s processes)'
      % (secs, ref[concs[0]]['cores']))
print('%-30s %5s %12s %8s %7s %7s %8s %8s %8s %6s' % (
    'server (database-instances)', 'conns', 'escrows held', 'req/s', 'p50 ms', 'p99 ms',
    'esc p99', 'ver p99', 'rec p99', 'errors') + '   gen/srv/machine cores')
rows = [('passcrow-server (%s)' % cfg, fills[db_of(cfg)]['escrows'], ours[(cfg, c)])
        for cfg in configs for c in concs]
rows += [('python-passcrow 0.0.7', rf['escrows'], ref[c]) for c in concs]
for name, held, l in rows:
    print('%-30s %5d %12d %8.0f %7.2f %7.2f %8.2f %8.2f %8.2f %6d   %.2f / %.2f / %.2f' % (
        name, l['concurrency'], held, l['rps'], l['p50-ms'], l['p99-ms'],
        l['escrow']['p99-ms'], l['verify']['p99-ms'], l['recover']['p99-ms'], l['errors'],
        l['generator-cores'], l['server-cores'] or 0, l.get('machine-cores', 0)))
print()
best = max(concs, key=lambda c: ref[c]['rps'])
print('the reference at its best: %.0f req/s on %d connections' % (ref[best]['rps'], best))
for cfg in configs:
    for c in concs:
        o, h = ours[(cfg, c)], ceil[c]
        print('%-12s %3d connections: ours %.1fx the reference at %d, %.1fx its best; the ceiling'
              ' (policy document alone, %s) %.0f req/s, p99 %.2f ms: the full cycle runs at %.0f%% of it' % (
                  cfg, c, o['rps'] / max(ref[c]['rps'], 1e-9), c,
                  o['rps'] / max(ref[best]['rps'], 1e-9), configs[0], h['rps'], h['p99-ms'],
                  100 * o['rps'] / max(h['rps'], 1e-9)))
print()
for db, f in fills.items():
    what = ('the database (pg_database_size)' if db == 'postgres'
            else 'the data directory, with the WAL')
    print('ours (%s): %d escrows stored in %.1f s through the storage layer; %.0f bytes of disk per'
          ' escrow after the run (%s: %d bytes)'
          % (db, f['escrows'], f['seconds'], disk[db] / f['escrows'], what, disk[db]))
print('reference: %d escrows stored in %.1f s (time limit %s s) through its storage layer;'
      ' %.0f bytes of disk per escrow' % (rf['escrows'], rf['seconds'], ref_limit,
                                         rf['disk-bytes'] / max(rf['escrows'], 1)))
for cfg in configs:
    for c in concs:
        f = '%s/ours-%s-syncs-%d.csv' % (work, cfg, c)
        if not os.path.exists(f):
            continue
        n = 0
        for line in open(f):
            parts = line.strip().split(',')
            if len(parts) > 2 and parts[2].startswith('syscalls:') and parts[0].isdigit():
                n += int(parts[0])
        o = ours[(cfg, c)]
        cycles = o['cycles-per-second'] * o['seconds']
        print('%-12s %3d connections: ours made %d syncs (fsync + fdatasync) in %.0f s: %.0f a second,'
              ' %.2f a cycle (%.2f requests a sync)' % (
                  cfg, c, n, o['seconds'], n / o['seconds'], n / max(cycles, 1),
                  o['requests'] / max(n, 1)))
print('limits switched off for the run: ours: the per-address request rate (rate_limit_burst = 0)'
      ' and connection cap (max_connections_per_address = 0),'
      ' the server-wide e-mail budget (outbound.per_kind_per_hour.email), the cap on escrows held'
      ' (limits.max_escrows) and on free escrows a day (limits.max_free_escrows_per_day); each'
      ' cycle has its own recipient, so no per-recipient budget is reached; the reference: its'
      ' per-address rate limit (patched off by tests/support/ref_server.py --no-rate-limit)')
for cfg in configs:
    for c in concs:
        f = '%s/ours-%s-profile-%d.txt' % (work, cfg, c)
        if os.path.exists(f):
            print()
            print(open(f).read().rstrip())
print()
names = ['ours-%s-fill.json' % db for db in fills] + ['ref-fill.json']
names += ['ours-%s-load-%d.json' % (cfg, c) for cfg in configs for c in concs]
names += ['%s-%d.json' % (k, c) for c in concs for k in ('ours-ceiling', 'ref-load')]
for n in names:
    print('%s: %s' % (n, open('%s/%s' % (work, n)).read().strip()))
PY

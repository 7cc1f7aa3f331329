#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, nightly only).
#
#   scripts/fuzz.sh SECONDS [TARGET...]   build, then run every target (or
#                                         the named ones) SECONDS each
#   scripts/fuzz.sh --build-only [TARGET...]
#   scripts/fuzz.sh --list
#
# Targets run two at a time (the machines have 2 cores), each from a copy
# of its checked-in corpus fuzz/corpus/TARGET in a scratch directory (so a
# run never grows the repository) with a -max_len that suits its input.
# Prints per target: executions, coverage (libFuzzer's cov: and ft:) and
# any crash artifact, which is kept under fuzz/artifacts/TARGET/ (ignored
# by git; copy it to fuzz/regressions/TARGET/ to keep it). Exits non-zero
# when a target crashed (panic, failed assertion, ASan report, timeout or
# out-of-memory).
#
# Without a nightly toolchain it says so and exits 0. cargo-fuzz is
# installed into the user's cargo bin when missing (pinned version).
# Environment: FUZZ_JOBS (default 2) targets at once; FUZZ_RSS_MB (2048)
# memory limit per target; FUZZ_KEEP=1 keeps the scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.1
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
JOBS=${FUZZ_JOBS:-2}
RSS_MB=${FUZZ_RSS_MB:-2048}

# Largest input per target (bytes): a little over what the code under test
# accepts, so its size limits are exercised too.
declare -A MAX_LEN=(
    [server_request]=4200 # the server's max_request_bytes is 4096
    [client_answer]=8192
    [pack]=16384
    [ephemeral_pack]=16384
    [policy_text]=2048
    [hashcash]=256 # the target itself ignores longer inputs (scrypt per check)
    [shares]=1200
    [c_api]=8192
    [identity]=512
)
ALL_TARGETS=(server_request client_answer pack ephemeral_pack policy_text hashcash shares c_api identity)

say() { printf -- '--> %s\n' "$*" >&2; }

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 1 ] || usage
mode=run
case "$1" in
--build-only) mode=build ;;
--list)
    printf '%s\n' "${ALL_TARGETS[@]}"
    exit 0
    ;;
-h | --help) usage ;;
*[!0-9]* | "") usage ;;
*) seconds=$1 ;;
esac
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [ -n "${MAX_LEN[$t]:-}" ] || { echo "unknown fuzz target: $t (see --list)" >&2; exit 2; }
done

if ! command -v rustup >/dev/null || ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    echo "fuzzing skipped: no nightly toolchain"
    exit 0
fi

# The fuzz build (nightly, ASan, the server's whole dependency tree) takes
# about 10 minutes cold on 2 cores; it is kept outside the clone so a fresh
# clone on the same machine (as CI's) starts warm.
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/libpasscrow/fuzz-target}
mkdir -p "$FUZZ_TARGET_DIR"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$cargo_bin:$PATH"
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $cargo_bin"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --quiet
fi

# Release with debug assertions (and so overflow checks), ASan (the
# default sanitizer): the C ABI target goes through unsafe code.
say "building ${#targets[@]} fuzz target(s) (cargo +$TOOLCHAIN fuzz build -O -a)"
start=$(date +%s)
for t in "${targets[@]}"; do
    # One invocation per target would re-check the graph each time; build
    # all of them in one go when all are asked for.
    if [ ${#targets[@]} -eq ${#ALL_TARGETS[@]} ]; then
        cargo "+$TOOLCHAIN" fuzz build -O -a --target-dir "$FUZZ_TARGET_DIR"
        break
    fi
    cargo "+$TOOLCHAIN" fuzz build -O -a --target-dir "$FUZZ_TARGET_DIR" "$t"
done
say "built in $(($(date +%s) - start)) s"
[ "$mode" = run ] || exit 0

host=$(rustc "+$TOOLCHAIN" -vV | sed -n 's/^host: //p')
bin_dir="$FUZZ_TARGET_DIR/$host/release"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/passcrow-fuzz.XXXXXX")
cleanup() {
    # Only our own runs: the jobs this shell started.
    local pids
    pids=$(jobs -pr)
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    if [ "${FUZZ_KEEP:-0}" = 1 ]; then say "scratch kept: $scratch"; else rm -rf "$scratch"; fi
}
trap cleanup EXIT

run_one() {
    local t=$1 corpus="$scratch/$1/corpus" art="fuzz/artifacts/$1/"
    mkdir -p "$corpus" "$art"
    if [ -d "fuzz/corpus/$t" ]; then cp -R "fuzz/corpus/$t/." "$corpus/"; fi
    local rc=0 t0
    t0=$(date +%s)
    # Regressions kept in the repository run first (as plain inputs), then
    # the fuzzing proper.
    if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
        "$bin_dir/$t" -rss_limit_mb="$RSS_MB" -artifact_prefix="$art" \
            "fuzz/regressions/$t"/* >"$scratch/$t/regressions.log" 2>&1 || rc=$?
    fi
    if [ $rc -eq 0 ]; then
        "$bin_dir/$t" -max_total_time="$seconds" -max_len="${MAX_LEN[$t]}" \
            -timeout=10 -rss_limit_mb="$RSS_MB" -print_final_stats=1 \
            -artifact_prefix="$art" "$corpus" >"$scratch/$t/log" 2>&1 || rc=$?
    else
        cp "$scratch/$t/regressions.log" "$scratch/$t/log"
    fi
    echo "$rc $(($(date +%s) - t0))" >"$scratch/$t/rc"
}

say "fuzzing ${#targets[@]} target(s), $seconds s each, $JOBS at a time"
for t in "${targets[@]}"; do
    while [ "$(jobs -pr | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    run_one "$t" &
done
wait || true

failed=0
printf '%-16s %12s %8s %8s %6s  %s\n' target executions cov ft secs result
for t in "${targets[@]}"; do
    log="$scratch/$t/log"
    read -r rc secs <"$scratch/$t/rc" || { rc=1; secs=0; }
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    result=ok
    if [ "$rc" != 0 ] || [ -n "$artifact" ]; then
        failed=1
        result="CRASH (exit $rc) ${artifact:-no artifact}"
    fi
    printf '%-16s %12s %8s %8s %6s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$secs" "$result"
    if [ "$result" != ok ]; then
        mkdir -p "fuzz/artifacts/$t"
        cp "$log" "fuzz/artifacts/$t/last-run.log"
        echo "    log: fuzz/artifacts/$t/last-run.log" >&2
        grep -m 1 -A 3 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer" "$log" |
            sed 's/^/    /' >&2 || true
    fi
done
if [ $failed -ne 0 ]; then
    echo "fuzzing found a crash (reproduce: $FUZZ_TARGET_DIR/$host/release/TARGET ARTIFACT)" >&2
    exit 1
fi
echo "fuzzing: ${#targets[@]} target(s), no crash"

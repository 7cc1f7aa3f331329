#!/usr/bin/env bash
# The C API's call overhead: one passcrow_recover() from C
# (tests/c/bench_recover.c) against the same Client::recover in Rust
# (examples/bench_recover.rs, shared with the bindings benchmark), both
# release builds, same pack, same loopback passcrow-server, calls
# alternating between the two long-lived programs; each round verifies
# (untimed), pauses 5 ms and times recover alone. Prints
# medians side by side and the overhead; exits non-zero when the C median
# is more than 5% slower.
#
#   scripts/bench-c-overhead.sh [CALLS]     (default 1000 each)
#   BENCH_LINK=static scripts/bench-c-overhead.sh   (C side linked statically)
set -euo pipefail
cd "$(dirname "$0")/.."

calls=${1:-1000}
warmup=10
target=${CARGO_TARGET_DIR:-target}

cargo build --release --features capi,server --lib --bin passcrow-server \
    --example bench_recover
tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Private copies: the shared target dir may be rebuilt meanwhile.
mkdir -p "$tmp/lib" "$tmp/data"
cp "$target/release/libpasscrow.so" "$tmp/lib/"
ln -s libpasscrow.so "$tmp/lib/libpasscrow.so.0"
cp "$target/release/passcrow-server" "$target/release/examples/bench_recover" "$tmp/"
# BENCH_LINK=static links libpasscrow.a instead of the shared library.
if [ "${BENCH_LINK:-shared}" = static ]; then
    cp "$target/release/libpasscrow.a" "$tmp/lib/"
    cc -O2 -Wall -Wextra -Werror -Iinclude tests/c/bench_recover.c "$tmp/lib/libpasscrow.a" \
        -lpthread -ldl -lm -o "$tmp/bench_recover_c"
else
    cc -O2 -Wall -Wextra -Werror -Iinclude tests/c/bench_recover.c -L"$tmp/lib" -lpasscrow \
        -o "$tmp/bench_recover_c"
fi

cat > "$tmp/data/config.toml" <<TOML
data_dir = "$tmp/data"
create_master_key = true
rate_limit_burst = 0
verifications_per_hour = 1000000
TOML
"$tmp/passcrow-server" --listen 127.0.0.1:0 --data "$tmp/data" \
    --deliver-to-file "$tmp/codes.txt" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
for _ in $(seq 100); do
    url=$(sed -n 's/^listening on //p' "$tmp/server.out")
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { cat "$tmp/server.err" >&2; exit 1; }

# One pack, 2 of 3 (alice, bob, carol), recovered with alice's and bob's
# codes by both programs in turn.
mkdir -p "$tmp/home"
LD_LIBRARY_PATH="$tmp/lib" "$tmp/bench_recover_c" protect "$tmp/home" "$tmp/home" bench "$url" \
    alice bob carol
stats() { # calls, median and mean in microseconds of the seconds in file $1
    sort -g "$1" | awk '{a[NR]=$1*1e6; s+=$1*1e6}
        END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%d %.1f %.1f\n", NR, m, s/NR}'
}
echo "server $url; $calls recoveries each, C and Rust alternating call by call" >&2
# Both programs stay up and run one round per line on stdin, so each call
# from C is next in time to one from Rust and both see the same load.
mkfifo "$tmp/c.in" "$tmp/c.out" "$tmp/rust.in" "$tmp/rust.out"
LD_LIBRARY_PATH="$tmp/lib" "$tmp/bench_recover_c" "$tmp/home" "$tmp/home" bench \
    "$tmp/codes.txt" alice bob <"$tmp/c.in" >"$tmp/c.out" &
exec 3>"$tmp/c.in" 4<"$tmp/c.out"
"$tmp/bench_recover" "$tmp/home" "$tmp/home" bench "$tmp/codes.txt" alice bob \
    <"$tmp/rust.in" >"$tmp/rust.out" &
exec 5>"$tmp/rust.in" 6<"$tmp/rust.out"
: >"$tmp/c.times"
: >"$tmp/rust.times"
round() { # $1: c or rust
    local t
    if [ "$1" = c ]; then echo >&3; read -r t <&4; else echo >&5; read -r t <&6; fi
    [ -n "$t" ] || { echo "the $1 benchmark stopped" >&2; exit 1; }
    echo "$t" >>"$tmp/$1.times"
}
for i in $(seq "$warmup"); do round c; round rust; done
: >"$tmp/c.times"
: >"$tmp/rust.times"
for i in $(seq "$calls"); do
    if [ $((i % 2)) -eq 1 ]; then round c; round rust; else round rust; round c; fi
done
exec 3>&- 5>&-

read -r n_c med_c mean_c <<<"$(stats "$tmp/c.times")"
read -r n_r med_r mean_r <<<"$(stats "$tmp/rust.times")"
printf '%-6s %8s %14s %14s\n' "" calls "median (us)" "mean (us)"
printf '%-6s %8d %14.1f %14.1f\n' C "$n_c" "$med_c" "$mean_c"
printf '%-6s %8d %14.1f %14.1f\n' Rust "$n_r" "$med_r" "$mean_r"
awk -v c="$med_c" -v r="$med_r" 'BEGIN {
    o = (c - r) / r * 100; printf "C overhead (median): %+.2f%%\n", o; exit (o > 5) }'

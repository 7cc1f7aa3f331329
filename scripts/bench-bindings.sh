#!/usr/bin/env bash
# The bindings' overhead where users meet it (issue 17, part 3): recover
# through the Python binding and the Kotlin binding (JVM, JIT warmed)
# against the same call from Rust, all against a release passcrow-server
# behind examples/delay_proxy.rs, which adds a fixed delay to every chunk
# each way (BENCH_ONE_WAY_MS, default 10: a 20 ms round trip). The three
# sides are long-lived worker processes, rounds alternated in one run, each
# on its own kept-alive connection (checked: the proxy counts them). Then
# the same on loopback (0 ms through the proxy), where the per-call
# constant is the same and the call 40 ms shorter.
#
#   scripts/bench-bindings.sh [ROUNDS]     # default 200 rounds each side
#
# Builds what it needs, all release: the wheel (maturin), the library
# Kotlin loads (feature uniffi), passcrow-server, examples bench_recover and
# delay_proxy; installs maturin/pytest (venv), kotlinc (npm) and JNA (apt)
# when missing, as scripts/test.d/30-bindings.sh does. The driver is
# bindings/python/bench/bench_recover.py.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf -- '--> %s\n' "$*" >&2; }

rounds=${1:-200}
one_way=${BENCH_ONE_WAY_MS:-10}
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=scripts/bindings-tools.sh
. scripts/bindings-tools.sh

build_wheel
say "cargo build --release --features uniffi --lib (the library Kotlin loads)"
cargo build -q --release --features uniffi --lib
mkdir -p "$work/lib"
cp "$target/release/libpasscrow.so" "$work/lib/"
build_bench

# The Kotlin worker's jar, rebuilt when its sources or kotlinc change.
src=(bindings/kotlin/src/main/kotlin/uniffi/passcrow/passcrow.kt
    bindings/kotlin/src/bench/kotlin/BenchRecover.kt)
key=$( (echo "$KOTLIN_VERSION"; cat "${src[@]}") | sha256sum | cut -c1-16)
jar=$target/bench-bindings/bench-kotlin-$key.jar
if [ ! -f "$jar" ]; then
    say "kotlinc: generated sources + benchmark worker"
    mkdir -p "$target/bench-bindings"
    rm -f "$target"/bench-bindings/bench-kotlin-*.jar
    "$kotlinc" -nowarn -include-runtime -cp "$jna" -d "$jar.tmp.jar" "${src[@]}"
    mv "$jar.tmp.jar" "$jar"
fi

run() { # ONE_WAY_MS
    PASSCROW_SERVER=$target/release/passcrow-server "$venv/bin/python" \
        bindings/python/bench/bench_recover.py "$target/release/examples/bench_recover" \
        --proxy "$target/release/examples/delay_proxy" --one-way-ms "$1" --rounds "$rounds" \
        --kotlin-classpath "$jar:$jna" --kotlin-libdir "$work/lib"
}
say "recover via Python and Kotlin vs Rust, $one_way ms each way, $rounds rounds each side"
run "$one_way"
echo
say "the same on loopback (0 ms through the proxy): the constant without the latency"
run 0

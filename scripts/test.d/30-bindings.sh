#!/usr/bin/env bash
# The UniFFI bindings (issue 5), end to end:
#
# 1. installs what is missing (scripts/bindings-tools.sh): a venv
#    (target/bindings-venv) with pinned maturin and pytest, kotlinc (npm
#    package kotlin-compiler, pinned, in target/kotlin), JNA (Debian's
#    libjna-java);
# 2. builds the wheel (maturin, release, bindings = "uniffi", features
#    uniffi + python-compat: the cdylib plus the Python module
#    uniffi-bindgen generates in library mode) and installs it into the
#    venv; builds the library Kotlin and Swift get (release, feature uniffi
#    only: UniFFI's library mode exports all a cdylib holds, so the
#    python-passcrow drop-in's python-compat must not be in it);
# 3. pytest bindings/python/tests against a real passcrow-server (the
#    fixtures start it), then examples/python/quickstart.py;
# 4. regenerates the Kotlin and Swift sources from that library and fails
#    when the checked-in ones (bindings/kotlin, bindings/swift) differ;
#    UPDATE_BINDINGS=1 rewrites them instead; then fails when they name
#    any FFI symbol only the wheel's library has (the drop-in's);
# 5. compiles the Kotlin test, the benchmark's Kotlin worker and
#    examples/kotlin/Quickstart.kt with kotlinc against JNA and runs the
#    test and the quickstart on the JVM, on that library, against a
#    passcrow-server;
# 6. the benchmark as a guard against gross regressions (about 20 s, as the
#    loopback run it replaced):
#    recover through Python and Kotlin against the same call from Rust (all
#    release, a release passcrow-server behind examples/delay_proxy.rs at
#    20 ms round trip), 20 rounds each side; fails when a binding's median
#    overhead exceeds 5% (about 2 ms a call; measured: 0.2-0.5 ms) or a
#    side did not keep its connection alive. The full run with its table:
#    scripts/bench-bindings.sh. A debug library in the wheel is caught
#    deterministically in step 2 instead (no DWARF in a release build).
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf -- '--> %s\n' "$*" >&2; }

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
venv=$target/bindings-venv
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- installs
# shellcheck source=scripts/bindings-tools.sh
. scripts/bindings-tools.sh

# ------------------------------------------------------------------ builds
say "cargo build: passcrow-server, uniffi-bindgen"
cargo build -q --features server --bin passcrow-server
cargo build -q --features uniffi-cli --bin uniffi-bindgen
export PASSCROW_SERVER=$target/debug/passcrow-server
bindgen=$target/debug/uniffi-bindgen

build_wheel
# A release build carries no DWARF (Cargo strips debuginfo when debug = 0);
# a debug build does, and makes every binding call several times slower.
if readelf -S --wide "$lib" | grep -q '\.debug_info'; then
    echo "$lib has debug info: the wheel must hold a release build (maturin build --release)" >&2
    exit 1
fi

# The library for Kotlin and Swift: without python-compat.
say "cargo build --release --features uniffi --lib (no python-compat: Kotlin, Swift)"
cargo build -q --release --features uniffi --lib
mkdir -p "$work/lib"
cp "$target/release/libpasscrow.so" "$work/lib/libpasscrow.so"
mobile_lib=$work/lib/libpasscrow.so

# ------------------------------------------------------------------ python
say "pytest bindings/python/tests"
(cd bindings/python && "$venv/bin/python" -m pytest -q -p no:cacheprovider tests)

# A passcrow-server for the examples and the Kotlin test: start_server DIR
# sets $url; codes go to DIR/codes.txt.
start_server() {
    local dir=$1
    "$PASSCROW_SERVER" init "$dir/server" >/dev/null
    # One client address makes every request of a test in quick
    # succession: the per-address request rate is off (its limits have
    # their own tests over HTTP, tests/server_connections.rs and
    # tests/server_http.rs), as it is in the Python tests' conftest.
    sed -i '1i rate_limit_burst = 0' "$dir/server/config.toml"
    # Release delays are offered only where notices can link to a cancel
    # page (nothing is served there in these tests).
    sed -i 's|^\[outbound\]$|[outbound]\npublic_url = "http://127.0.0.1:9"|' "$dir/server/config.toml"
    grep -q '^public_url = ' "$dir/server/config.toml"
    "$PASSCROW_SERVER" --config "$dir/server/config.toml" --listen 127.0.0.1:0 \
        --data "$dir/server" --deliver-to-file "$dir/codes.txt" >"$dir/server.log" 2>&1 &
    pids+=($!)
    url=""
    for _ in $(seq 100); do
        url=$(grep -o 'listening on http://[0-9.:]*' "$dir/server.log" | cut -d' ' -f3 || true)
        [ -n "$url" ] && return 0
        sleep 0.1
    done
    cat "$dir/server.log" >&2
    echo "passcrow-server did not start" >&2
    return 1
}

say "examples/python/quickstart.py"
mkdir -p "$work/pyq"
start_server "$work/pyq"
"$venv/bin/python" examples/python/quickstart.py "$url" "$work/pyq/codes.txt" | tee "$work/pyq/out"
grep -q "^recovered: correct horse$" "$work/pyq/out"

# ------------------------------------------------- generated Kotlin, Swift
say "regenerating Kotlin and Swift sources from $mobile_lib"
"$bindgen" generate --no-format --library "$mobile_lib" --language kotlin --out-dir "$work/gen/kotlin" >/dev/null
"$bindgen" generate --no-format --library "$mobile_lib" --language swift --out-dir "$work/gen/swift" >/dev/null
stale=0
check_generated() { # generated checked-in
    if ! cmp -s "$1" "$2"; then
        if [ "${UPDATE_BINDINGS:-}" = 1 ]; then
            mkdir -p "$(dirname "$2")"
            cp "$1" "$2"
            say "updated $2"
        else
            diff -u "$2" "$1" | head -40 >&2 || true
            echo "$2 is stale: run UPDATE_BINDINGS=1 $0" >&2
            stale=1
        fi
    fi
}
check_generated "$work/gen/kotlin/uniffi/passcrow/passcrow.kt" bindings/kotlin/src/main/kotlin/uniffi/passcrow/passcrow.kt
check_generated "$work/gen/swift/passcrow.swift" bindings/swift/Sources/Passcrow/passcrow.swift
check_generated "$work/gen/swift/passcrowFFI.h" bindings/swift/Headers/passcrowFFI.h
check_generated "$work/gen/swift/passcrowFFI.modulemap" bindings/swift/Headers/module.modulemap
[ "$stale" = 0 ]

# The drop-in stays out of Kotlin and Swift: the FFI symbols only the
# wheel's library exports (python-compat's functions, constructors,
# methods and their checksums) appear in none of their sources. (A Rust
# test, ffi::python_compat::tests, checks the same files for the drop-in's
# names.)
ffi_syms() { nm -D --defined-only "$1" | awk '{print $3}' | grep '^uniffi_passcrow_' | sort -u; }
ffi_syms "$lib" >"$work/wheel.syms"
ffi_syms "$mobile_lib" >"$work/mobile.syms"
comm -23 "$work/wheel.syms" "$work/mobile.syms" >"$work/compat.syms"
if [ ! -s "$work/compat.syms" ]; then
    echo "the wheel's library has no python-compat symbols: is the feature on in bindings/python/pyproject.toml?" >&2
    exit 1
fi
check_no_drop_in() { # files...
    local leaked
    leaked=$(grep -i -o -F -f "$work/compat.syms" "$@" | sort -u || true)
    if [ -n "$leaked" ]; then
        echo "the python-passcrow drop-in leaked into the Kotlin/Swift sources:" >&2
        echo "$leaked" >&2
        return 1
    fi
}
check_no_drop_in bindings/kotlin/src/main/kotlin/uniffi/passcrow/passcrow.kt \
    bindings/swift/Sources/Passcrow/passcrow.swift bindings/swift/Headers/passcrowFFI.h
say "Kotlin/Swift sources free of the $(wc -l <"$work/compat.syms") python-compat symbols"

# ------------------------------------------------------------------ kotlin
say "kotlinc: generated sources + test + benchmark worker + quickstart (JNA $jna)"
jar=$work/passcrow-kotlin.jar
"$kotlinc" -nowarn -include-runtime -cp "$jna" -d "$jar" \
    bindings/kotlin/src/main/kotlin/uniffi/passcrow/passcrow.kt \
    bindings/kotlin/src/test/kotlin/PasscrowTest.kt \
    bindings/kotlin/src/bench/kotlin/BenchRecover.kt \
    examples/kotlin/Quickstart.kt
jvm=(java -Djna.library.path="$(dirname "$mobile_lib")" -cp "$jar:$jna")

mkdir -p "$work/kt"
start_server "$work/kt"
say "Kotlin test (JVM)"
"${jvm[@]}" PasscrowTestKt "$url" "$work/kt/codes.txt" "$work/kt/work"
say "examples/kotlin/Quickstart.kt (JVM)"
"${jvm[@]}" QuickstartKt "$url" "$work/kt/codes.txt" | tee "$work/kt/out"
grep -q "^recovered: correct horse$" "$work/kt/out"

# --------------------------------------------------------------- benchmark
say "benchmark guard: recover via Python and Kotlin vs Rust, 20 ms round trip"
build_bench
PASSCROW_SERVER=$target/release/passcrow-server "$venv/bin/python" \
    bindings/python/bench/bench_recover.py "$target/release/examples/bench_recover" \
    --proxy "$target/release/examples/delay_proxy" --one-way-ms 10 --rounds 20 --warmup 5 \
    --kotlin-classpath "$jar:$jna" --kotlin-libdir "$(dirname "$mobile_lib")" \
    --max-overhead 5

say "bindings: all passed"

# Sourced by scripts/test.d/30-bindings.sh and scripts/bench-bindings.sh:
# installs what is missing and sets $venv, $kotlinc and $jna:
#   - a venv ($target/bindings-venv) with pinned maturin and pytest;
#   - kotlinc (npm package kotlin-compiler, pinned, in $target/kotlin);
#   - JNA (Debian's libjna-java).
# Needs $target (an absolute path) and say().

MATURIN_VERSION=1.16.0
PYTEST_VERSION=9.2.0
KOTLIN_VERSION=2.4.20

venv=$target/bindings-venv
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys
sys.exit(not (m.version('maturin') == '$MATURIN_VERSION' and m.version('pytest') == '$PYTEST_VERSION'))" 2>/dev/null; then
    say "venv $venv: maturin $MATURIN_VERSION, pytest $PYTEST_VERSION"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
        "maturin==$MATURIN_VERSION" "pytest==$PYTEST_VERSION"
fi

kotlinc=$target/kotlin/node_modules/kotlin-compiler/bin/kotlinc
if [ "$(cat "$target/kotlin/node_modules/kotlin-compiler/build.txt" 2>/dev/null)" != "$KOTLIN_VERSION" ]; then
    say "kotlin-compiler $KOTLIN_VERSION (npm) in $target/kotlin"
    mkdir -p "$target/kotlin"
    [ -f "$target/kotlin/package.json" ] || echo '{"private": true}' >"$target/kotlin/package.json"
    (cd "$target/kotlin" && npm install --no-audit --no-fund --loglevel=error \
        "kotlin-compiler@$KOTLIN_VERSION" >/dev/null)
fi
command -v java >/dev/null || { echo "java (JDK 17) is needed for kotlinc" >&2; exit 1; }

jna=/usr/share/java/jna.jar
if [ ! -f "$jna" ]; then
    say "installing libjna-java"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libjna-java >/dev/null
fi

# The wheel (maturin, release, features uniffi + python-compat), installed
# into the venv; sets $lib, the libpasscrow.so the Python module loads.
build_wheel() {
    say "maturin build --release (bindings/python)"
    rm -f "$target"/wheels/passcrow-*.whl
    (cd bindings/python && "$venv/bin/maturin" build --release -q -o "$target/wheels")
    local wheel
    wheel=$(ls "$target"/wheels/passcrow-*.whl)
    "$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
    local pkgdir
    pkgdir=$("$venv/bin/python" -c "import passcrow, os; print(os.path.dirname(passcrow.__file__))")
    lib=$pkgdir/_uniffi/libpasscrow.so
}

# The release artefacts of the bindings benchmark: passcrow-server, the
# Rust side (examples/bench_recover.rs) and the delay proxy
# (examples/delay_proxy.rs).
build_bench() {
    say "cargo build --release: passcrow-server, examples bench_recover and delay_proxy"
    cargo build -q --release --features server --bin passcrow-server \
        --example bench_recover --example delay_proxy
}

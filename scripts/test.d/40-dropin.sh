#!/usr/bin/env bash
# The python-passcrow drop-in (issue 6): tests/dropin, written only against
# python-passcrow's integration-guide API, runs twice against our
# passcrow-server — once with python-passcrow 0.0.7 (PyPI) installed, once
# with our wheel. Same test files; only the installed package differs.
# Tests marked reference_bug must fail on the reference (strict xfail) and
# pass on ours. Pass 2 sees the reference's appdirs module (only it), to
# compare our default directories with appdirs'.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf -- '--> %s\n' "$*" >&2; }

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
target=$(cd "$target" && pwd)

cargo build -q --features server --bin passcrow-server
export PASSCROW_SERVER_BIN=$target/debug/passcrow-server

# Pass 1: the reference, from the venv scripts/ref-venv.sh makes.
ref_py=$(scripts/ref-venv.sh)
say "drop-in suite on python-passcrow 0.0.7"
(cd tests/dropin && "$ref_py" -m pytest -q -p no:cacheprovider .)

# Pass 2: our wheel, in the venv scripts/test.d/30-bindings.sh makes
# (built here when that step has not run).
venv=$target/bindings-venv
if ! "$venv/bin/python" -c "import passcrow, sys; sys.exit(not getattr(passcrow, '__libpasscrow__', False))" 2>/dev/null; then
    say "building and installing the wheel into $venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "maturin==1.16.0" "pytest==9.2.0"
    rm -f "$target"/wheels/passcrow-*.whl
    (cd bindings/python && "$venv/bin/maturin" build --release -q -o "$target/wheels")
    "$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps \
        "$target"/wheels/passcrow-*.whl
fi
# python-passcrow's appdirs (a dependency of the reference, not of our
# wheel) on the path of pass 2 only, so that test_shared_dirs_are_appdirs
# compares our default directories with appdirs' (test_client_needs_no_appdirs
# still hides it from the import).
appdirs_dir=$(mktemp -d)
trap 'rm -rf "$appdirs_dir"' EXIT
cp "$("$ref_py" -c 'import appdirs; print(appdirs.__file__)')" "$appdirs_dir/"
say "drop-in suite on libpasscrow's wheel"
(cd tests/dropin && PYTHONPATH="$appdirs_dir${PYTHONPATH:+:$PYTHONPATH}" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -rs .)

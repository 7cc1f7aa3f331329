#!/usr/bin/env bash
# Build (once) a Python virtualenv holding the reference implementation,
# python-passcrow 0.0.7 from PyPI, plus what our interop helpers in
# tests/support/ need (Flask for the reference server glue, pytest, ...).
#
# Usage: scripts/ref-venv.sh
#   PASSCROW_REF_VENV  where to put the venv (default: target/ref-venv,
#                      relative paths are taken from the repository root)
#   PYTHON             interpreter used to create it (default: python3)
#
# The last (and only) line on stdout is the absolute path of the venv's
# python; all progress output goes to stderr.  A stamp file holding a hash
# of the pinned requirement list makes repeated runs instant; editing the
# list below causes a re-install on the next run.
set -euo pipefail

# Exact pins, checked to install and work together on CPython 3.11.
# The first block is what we ask for; the second is what it pulls in.
REQUIREMENTS=(
    passcrow==0.0.7
    cryptography==50.0.2
    appdirs==1.4.4
    Flask==3.1.3
    aiosmtpd==1.4.6
    pytest==9.2.0

    Werkzeug==3.1.9
    Jinja2==3.1.6
    MarkupSafe==3.0.4
    itsdangerous==2.2.0
    click==8.5.1
    blinker==1.9.0
    cffi==2.1.1
    pycparser==3.12
    atpublic==9.0.0
    attrs==26.1.0
    iniconfig==2.3.1
    packaging==26.3
    pluggy==1.7.0
    Pygments==2.21.0
)

log() { printf 'ref-venv: %s\n' "$*" >&2; }

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(cd -- "$script_dir/.." && pwd -P)

venv=${PASSCROW_REF_VENV:-target/ref-venv}
case "$venv" in
    /*) ;;
    *) venv="$repo_root/$venv" ;;
esac
python_bin=${PYTHON:-python3}
venv_python="$venv/bin/python"
stamp="$venv/.passcrow-ref-stamp"

# The stamp covers the pin list and the interpreter that made the venv.
want_stamp=$(
    {
        printf '%s\n' "${REQUIREMENTS[@]}"
        "$python_bin" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
)

if [ -x "$venv_python" ] && [ -f "$stamp" ] \
        && [ "$(cat "$stamp")" = "$want_stamp" ]; then
    printf '%s\n' "$venv_python"
    exit 0
fi

# Serialise concurrent callers (parallel test binaries, CI steps).
mkdir -p -- "$(dirname -- "$venv")"
lockfile="$venv.lock"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$lockfile"
    flock 9
fi

# Someone else may have finished the job while we waited for the lock.
if [ -x "$venv_python" ] && [ -f "$stamp" ] \
        && [ "$(cat "$stamp")" = "$want_stamp" ]; then
    printf '%s\n' "$venv_python"
    exit 0
fi

# A venv whose interpreter no longer runs (Python upgraded or removed) is
# useless; start over.
if [ -e "$venv" ] && ! "$venv_python" -c 'import sys' >/dev/null 2>&1; then
    log "removing broken venv at $venv"
    rm -rf -- "$venv"
fi

if [ ! -x "$venv_python" ]; then
    log "creating venv at $venv with $python_bin"
    "$python_bin" -m venv "$venv" >&2
fi

rm -f -- "$stamp"
log "installing pinned packages (${#REQUIREMENTS[@]} requirements)"
"$venv_python" -m pip install --disable-pip-version-check -q \
    "${REQUIREMENTS[@]}" >&2

# Cheap sanity check: the reference and its server glue import cleanly.
"$venv_python" - >&2 <<'PY'
import passcrow.client, passcrow.server, passcrow.storage
import passcrow.integration.flask_common
import flask, werkzeug.serving
PY

printf '%s\n' "$want_stamp" >"$stamp.tmp"
mv -f -- "$stamp.tmp" "$stamp"
log "ready"
printf '%s\n' "$venv_python"

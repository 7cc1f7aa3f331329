#!/usr/bin/env bash
# The C ABI (issue 4), end to end:
#
# 1. the checked-in include/passcrow.h is the fresh cbindgen output and its
#    version macros are Cargo.toml's (tests/c_header.rs); it compiles as
#    C99 -pedantic and as C++;
# 2. `make install DESTDIR=...` stages libpasscrow.so (SONAME
#    libpasscrow.so.MAJOR), libpasscrow.a, passcrow.h and passcrow.pc, and
#    `pkg-config --cflags --libs passcrow` finds them;
# 3. examples/c/quickstart.c and examples/c/totp_and_delay.c (linked
#    shared, via pkg-config) and tests/c/misuse.c (linked static) compile
#    with -Wall -Wextra -Werror and run under valgrind against a loopback
#    passcrow-server: no error, no leak; totp_and_delay is given the code
#    of the URI it prints, computed here as an authenticator app would
#    (RFC 6238, Python's hmac), and must see a delayed recovery pending;
# 4. tests/c/bench_recover.c compiles (the benchmark itself is
#    scripts/bench-c-overhead.sh).
#
# Installs with apt-get what is missing (cc, make, pkg-config, valgrind).
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf -- '--> %s\n' "$*" >&2; }

missing=()
command -v cc >/dev/null || missing+=(gcc)
command -v c++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v readelf >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

target=${CARGO_TARGET_DIR:-target}
# The feature set of `cargo test --all-features` (scripts/test.sh), so the
# artifacts it built are reused.
features=--all-features
tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

say "build the library and passcrow-server"
cargo build -q $features --lib --bin passcrow-server
cp "$target/debug/passcrow-server" "$tmp/"

say "include/passcrow.h is fresh (tests/c_header.rs)"
cargo test -q $features --test c_header
cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c include/passcrow.h
c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only -x c++ include/passcrow.h

say "make install DESTDIR=... and pkg-config"
stage="$tmp/stage"
make -s install DESTDIR="$stage" PREFIX=/usr/local CARGO_FLAGS="-q $features" \
    BUILD_DIR="$target/debug" >/dev/null
lib="$stage/usr/local/lib"
for f in include/passcrow.h lib/libpasscrow.a lib/libpasscrow.so lib/libpasscrow.so.0 \
    lib/pkgconfig/passcrow.pc; do
    [ -e "$stage/usr/local/$f" ] || { echo "make install did not install $f" >&2; exit 1; }
done
soname=$(readelf -d "$lib/libpasscrow.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
major=$(sed -n 's/^version = "\([0-9]*\)\..*/\1/p' Cargo.toml | head -n 1)
[ "$soname" = "libpasscrow.so.$major" ] || { echo "SONAME is '$soname'" >&2; exit 1; }
export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[ "$(pkg-config --modversion passcrow)" = "$version" ]
cflags=$(pkg-config --cflags passcrow)
libs=$(pkg-config --libs passcrow)
# Static: libpasscrow.a plus Libs.private.
static_libs=$(pkg-config --static --libs passcrow |
    sed 's/-lpasscrow/-Wl,-Bstatic -lpasscrow -Wl,-Bdynamic/')
say "pkg-config --cflags --libs passcrow: $cflags $libs"

say "compile the C programs (-Wall -Wextra -Werror)"
ccw=(cc -std=gnu11 -g -Wall -Wextra -Werror)
# shellcheck disable=SC2086
"${ccw[@]}" examples/c/quickstart.c $cflags $libs -o "$tmp/quickstart"
# shellcheck disable=SC2086
"${ccw[@]}" examples/c/totp_and_delay.c $cflags $libs -o "$tmp/totp_and_delay"
# shellcheck disable=SC2086
"${ccw[@]}" tests/c/misuse.c $cflags $static_libs -o "$tmp/misuse"
# shellcheck disable=SC2086
"${ccw[@]}" tests/c/bench_recover.c $cflags $libs -o "$tmp/bench_recover"
if readelf -d "$tmp/misuse" | grep -q 'libpasscrow'; then
    echo "tests/c/misuse was not linked statically" >&2
    exit 1
fi

say "start passcrow-server on loopback"
mkdir -p "$tmp/server"
cat >"$tmp/server/config.toml" <<TOML
data_dir = "$tmp/server"
create_master_key = true
rate_limit_burst = 0
verifications_per_hour = 1000
# The quickstart's tel: identity is Icelandic; SMS goes only to the
# countries listed (none by default).
# The benchmark below mails the same people many times an hour.
[outbound]
sms_countries = ["354"]
per_recipient_per_hour = 1000000
per_recipient_per_day = 1000000
per_kind_per_hour = { email = 1000000000, sms = 1000000000 }
# Release delays are offered only where the notices can link to the
# cancel page (nothing is served there in this test).
public_url = "http://127.0.0.1:9"
TOML
"$tmp/passcrow-server" --listen 127.0.0.1:0 --data "$tmp/server" \
    --deliver-to-file "$tmp/codes.txt" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
url=""
for _ in $(seq 300); do
    url=$(sed -n 's/^listening on //p' "$tmp/server.out")
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "passcrow-server did not start:" >&2
    cat "$tmp/server.err" >&2
    exit 1
fi

vg=(valgrind -q --error-exitcode=1 --leak-check=full --num-callers=64
    --suppressions=tests/c/valgrind.supp)
export LD_LIBRARY_PATH="$lib"

say "examples/c/quickstart.c under valgrind ($url)"
"${vg[@]}" "$tmp/quickstart" "$url" "$tmp/codes.txt"

say "examples/c/totp_and_delay.c under valgrind"
# The 6 digits an authenticator app enrolled with URI would show now.
totp_now() {
    python3 -c '
import base64, hashlib, hmac, struct, sys, time, urllib.parse
q = urllib.parse.parse_qs(urllib.parse.urlparse(sys.argv[1]).query)
s = q["secret"][0].upper()
key = base64.b32decode(s + "=" * (-len(s) % 8))
h = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
o = h[-1] & 15
print("%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7FFFFFFF) % 1000000))
' "$1"
}
# It reads the code from a FIFO kept open here (fd 7), as a user types it
# after reading the app.
td_out=$tmp/totp_and_delay.out
mkfifo "$tmp/totp.in"
exec 7<>"$tmp/totp.in"
"${vg[@]}" "$tmp/totp_and_delay" "$url" "$tmp/codes.txt" <"$tmp/totp.in" >"$td_out" 2>&1 &
td_pid=$!
uri=""
for _ in $(seq 600); do
    uri=$(sed -n 's/^enrol phone .*: \(otpauth:.*\)$/\1/p' "$td_out")
    [ -n "$uri" ] && break
    kill -0 "$td_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$uri" ]; then
    cat "$td_out" >&2
    echo "totp_and_delay printed no enrolment" >&2
    exit 1
fi
totp_now "$uri" >&7
exec 7>&-
td_rc=0
wait "$td_pid" || td_rc=$?
cat "$td_out" >&2
[ "$td_rc" = 0 ] || { echo "totp_and_delay failed ($td_rc)" >&2; exit 1; }
grep -q "^recovered with the authenticator: seed words of a wallet$" "$td_out"
grep -q "^recovery pending: come back in" "$td_out"
grep -q "^OK$" "$td_out"

say "tests/c/misuse.c under valgrind"
"${vg[@]}" "$tmp/misuse" "$url" "$tmp/codes.txt"

say "C ABI: all passed"

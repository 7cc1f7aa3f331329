#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (tests/common/pg.rs
# runs this once per test binary):
#
#   scripts/pg-test-cluster.sh OWNER_PID
#
# installs Debian's postgresql package when no initdb is found, creates a
# temporary directory, `initdb`s a cluster into it (superuser
# passcrow_test, password authentication over TCP, the password in a
# file), makes a test CA and a server certificate for localhost/127.0.0.1
# and turns TLS on, and starts it on a free loopback port. PostgreSQL
# refuses to run as root: as root, the cluster runs as the `postgres`
# user (the package creates it), the directory owned by it.
#
# Prints, one per line: port=N, dir=DIR, password_file=FILE, ca=FILE.
# A watcher stops the cluster and removes DIR once OWNER_PID has exited
# (the test binary), or after 2 hours whatever happens.
set -euo pipefail

owner=${1:?usage: pg-test-cluster.sh OWNER_PID}
say() { printf -- 'pg-test-cluster: %s\n' "$*" >&2; }

find_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

if ! bin=$(find_bin); then
    say "PostgreSQL not found: installing Debian's postgresql package"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
    bin=$(find_bin) || { say "no initdb after installing postgresql"; exit 1; }
fi

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || { say "running as root and there is no postgres user"; exit 1; }
    as_pg=(runuser -u postgres --)
fi

dir=$(mktemp -d /tmp/passcrow-pg.XXXXXX)
chmod 0755 "$dir"
password_file=$dir/password
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$password_file"
chmod 0644 "$password_file"

# TLS: a CA and a certificate for localhost and 127.0.0.1 it signs.
if command -v openssl >/dev/null; then
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=passcrow-test-ca \
            -keyout ca.key -out ca.crt 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
            -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -days 2 -extfile ext.cnf -out server.crt 2>/dev/null
        chmod 0600 server.key ca.key
    )
fi

if [ ${#as_pg[@]} -gt 0 ]; then
    chown -R postgres "$dir"
    chmod 0644 "$password_file"
fi
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U passcrow_test --pwfile="$password_file" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
{
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$dir'"
    echo "max_connections = 200"
    echo "shared_buffers = 32MB"
    if [ -f "$dir/server.crt" ]; then
        echo "ssl = on"
        echo "ssl_cert_file = '$dir/server.crt'"
        echo "ssl_key_file = '$dir/server.key'"
    fi
} >>"$dir/data/postgresql.conf"

started=""
for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    if "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port" start >/dev/null 2>&1; then
        started=1
        break
    fi
done
if [ -z "$started" ]; then
    say "PostgreSQL did not start; its log:"
    tail -n 20 "$dir/server.log" >&2 || true
    exit 1
fi

# The watcher: detached, so the test binary does not wait for it.
(
    deadline=$((SECONDS + 7200))
    while kill -0 "$owner" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 1; done
    "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
) </dev/null >/dev/null 2>&1 &
disown

echo "port=$port"
echo "dir=$dir"
echo "password_file=$password_file"
[ -f "$dir/ca.crt" ] && echo "ca=$dir/ca.crt"
exit 0

#!/bin/sh
# The official image's contract, cut down: on an empty PGDATA, initdb with POSTGRES_USER as the
# superuser and POSTGRES_PASSWORD (scram-sha-256 over TCP), create POSTGRES_DB, listen on all
# addresses; then run the server as the postgres user.
set -e
if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi
# VAR_FILE: the value read from that file (Docker and Kubernetes secrets), as the official image does.
for var in POSTGRES_PASSWORD POSTGRES_USER POSTGRES_DB; do
    file="$(eval echo "\${${var}_FILE:-}")"
    if [ -n "$file" ]; then
        export "$var=$(cat "$file")"
        unset "${var}_FILE"
    fi
done
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "$1" = postgres ] && ! id -un > /dev/null 2>&1; then
    # An arbitrary uid (Kubernetes' runAsUser) has no passwd entry, and initdb needs one.
    export NSS_WRAPPER_PASSWD="$(mktemp)" NSS_WRAPPER_GROUP="$(mktemp)"
    echo "postgres:x:$(id -u):$(id -g):PostgreSQL:$PGDATA:/bin/false" > "$NSS_WRAPPER_PASSWD"
    echo "postgres:x:$(id -g):" > "$NSS_WRAPPER_GROUP"
    export LD_PRELOAD="$(ls /usr/lib/*/libnss_wrapper.so)"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA" && chmod 0700 "$PGDATA"
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (as the official image requires)}"
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 -D "$PGDATA" > /dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    if [ "$db" != postgres ]; then
        # A temporary server on the socket only (as the official image does), so nothing connects
        # over TCP before initialisation is over.
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start > /dev/null
        psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -q \
            -c "CREATE DATABASE \"$db\" OWNER \"$user\""
        pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
    fi
    echo "database initialised: user $user, database $db"
fi
exec "$@"

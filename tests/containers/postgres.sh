#!/usr/bin/env bash
# PostgreSQL as the official image runs it: on the first start, a cluster whose superuser is
# POSTGRES_USER with POSTGRES_PASSWORD, and the database POSTGRES_DB; then the server, open to
# the project's network.
set -euo pipefail
data=/var/lib/postgresql/data
bin="$(ls -d /usr/lib/postgresql/*/bin | tail -1)"
if [ ! -s "$data/PG_VERSION" ]; then
    "$bin/initdb" -D "$data" -U "$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
    echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\"" | "$bin/postgres" --single -D "$data" postgres >/dev/null
fi
exec "$bin/postgres" -D "$data" -c listen_addresses='*' -k /tmp

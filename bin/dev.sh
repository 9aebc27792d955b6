#!/usr/bin/env bash
# Quick start: setup, a user `demo` with a new random password, then the server and the worker
# in the foreground until Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bin/setup.sh
password="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')"
if .venv/bin/python admin.py list-users | cut -f2 | grep -qx demo; then
    printf '%s\n' "$password" | .venv/bin/python admin.py set-password demo --password-stdin >/dev/null
else
    printf '%s\n' "$password" | .venv/bin/python admin.py create-user demo --password-stdin >/dev/null
fi
echo "gaas on http://${GEMSEO_HTTP_HOST:-127.0.0.1}:${GEMSEO_HTTP_PORT:-8000}  user: demo  password: $password"
bin/run_worker.sh &
worker=$!
bin/run_server.sh &
server=$!
# Ctrl-C already reaches both children (same process group): only wait for them; a second
# SIGINT would make uvicorn skip its shutdown. A SIGTERM to this script is passed on as SIGINT,
# which lets the worker finish its running jobs. If one child ends alone, the other is stopped.
stopping=""
trap 'stopping=1; wait "$server" "$worker"' INT
trap 'stopping=1; kill -INT "$server" "$worker" 2>/dev/null; wait "$server" "$worker"' TERM
wait -n "$server" "$worker" || true
if [ -z "$stopping" ]; then
    kill -INT "$server" "$worker" 2>/dev/null || true
fi
wait "$server" "$worker" 2>/dev/null || true

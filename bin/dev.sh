#!/usr/bin/env bash
# Quick start: setup, a user `demo` (its password made once, kept 0600 under the root and printed
# at each start), then the server and the worker in the foreground until Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bin/setup.sh
eval "$(.venv/bin/python settings.py HOST PORT ROOT_PATH)"
# A second instance on the same port would fail late and noisily: say so now, and change nothing.
if ! .venv/bin/python -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2])))' "$HOST" "$PORT" 2>/dev/null; then
    echo "error: $HOST:$PORT is in use (another gaas?); stop it or set GEMSEO_HTTP_PORT" >&2
    exit 1
fi
password_file="$ROOT_PATH/demo-password"
if ! .venv/bin/python admin.py list-users | cut -f2 | grep -qx demo; then
    (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))' > "$password_file")
    .venv/bin/python admin.py create-user demo --password-stdin < "$password_file" >/dev/null
fi
if [ -r "$password_file" ]; then
    echo "gaas on http://$HOST:$PORT  user: demo  password: $(cat "$password_file")"
else
    echo "gaas on http://$HOST:$PORT  user: demo (its password was set by hand: $password_file is absent)"
fi
exec bin/run_all.sh

#!/usr/bin/env bash
# Runs the web app: uvicorn gaas:app on GEMSEO_HTTP_HOST:GEMSEO_HTTP_PORT (defaults in settings.py).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(.venv/bin/python settings.py HOST PORT SHUTDOWN_TIMEOUT WEB_PROCESSES FORWARDED_ALLOW_IPS)"
# GEMSEO_HTTP_WEB_PROCESSES uvicorn processes share the port; each has its own warm processes for
# synchronous runs and its own long-polling waiters, and everything they share is in the store.
# With one, uvicorn runs no supervisor process.
workers=()
if [ "$WEB_PROCESSES" -gt 1 ]; then
    workers=(--workers "$WEB_PROCESSES")
fi
# X-Forwarded-For is read inside the app (gaas.py, GEMSEO_HTTP_FORWARDED_ALLOW_IPS), after it has
# kept the connection's own peer: a proxy's user header is believed by that peer only.
# No access log: it costs a tenth of a millisecond per request; jobs are logged, and counted in
# /metrics by route and status.
exec .venv/bin/uvicorn gaas:app \
    "${workers[@]}" \
    --host "$HOST" \
    --port "$PORT" \
    --loop uvloop --http httptools \
    --no-server-header \
    --no-proxy-headers \
    --no-access-log \
    --timeout-graceful-shutdown "$SHUTDOWN_TIMEOUT"

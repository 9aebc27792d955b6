#!/usr/bin/env bash
# Runs the web app: uvicorn gaas:app on GEMSEO_HTTP_HOST:GEMSEO_HTTP_PORT (defaults in settings.py).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(.venv/bin/python settings.py HOST PORT SHUTDOWN_TIMEOUT)"
# One uvicorn process: long-polling waiters and the warm processes for synchronous runs live in it.
# No access log: it costs a tenth of a millisecond per request; jobs are logged, and counted in
# /metrics by route and status.
exec .venv/bin/uvicorn gaas:app \
    --host "$HOST" \
    --port "$PORT" \
    --loop uvloop --http httptools \
    --no-server-header \
    --no-access-log \
    --timeout-graceful-shutdown "$SHUTDOWN_TIMEOUT"

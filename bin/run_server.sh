#!/usr/bin/env bash
# Runs the web app: uvicorn gaas:app on GEMSEO_HTTP_HOST:GEMSEO_HTTP_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
# One uvicorn process: long-polling waiters and the warm processes for synchronous runs live in it.
# No access log: it costs a tenth of a millisecond per request; jobs are logged, and counted in
# /metrics by route and status.
exec .venv/bin/uvicorn gaas:app \
    --host "${GEMSEO_HTTP_HOST:-127.0.0.1}" \
    --port "${GEMSEO_HTTP_PORT:-8000}" \
    --loop uvloop --http httptools \
    --no-server-header \
    --no-access-log \
    --timeout-graceful-shutdown 30

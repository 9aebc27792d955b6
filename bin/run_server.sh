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
# uvicorn is started as its script would be, but with SIGINT's default action until it sets its
# own handler: Python's would raise KeyboardInterrupt wherever the import of uvicorn is, and
# inside a weakref callback Python only prints it. A Ctrl-C then was lost, and bin/run_all.sh
# waited for ever for a web app that ran on. Nothing needs cleaning up before that handler.
exec .venv/bin/python -c 'import signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
sys.argv[0] = ".venv/bin/uvicorn"
from uvicorn.main import main
sys.exit(main())' gaas:app \
    "${workers[@]}" \
    --host "$HOST" \
    --port "$PORT" \
    --loop uvloop --http httptools \
    --no-server-header \
    --no-proxy-headers \
    --no-access-log \
    --timeout-graceful-shutdown "$SHUTDOWN_TIMEOUT"

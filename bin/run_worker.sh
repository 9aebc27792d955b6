#!/usr/bin/env bash
# Runs the worker: huey_consumer worker.huey with GEMSEO_HTTP_WORKERS threads (default in settings.py).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(.venv/bin/python settings.py WORKER_THREADS)"
# -d/-m/-b: Huey sleeps between polls of an empty queue, backing off up to 10 s by default, so
# a job submitted after an idle spell would wait seconds. An empty poll is one read-only query
# (no lock), so polling every 2 ms to 20 ms costs well under 1% of a core and starts any job
# within 20 ms.
# -k thread: each thread only waits on its job process; the work itself runs in those processes.
exec .venv/bin/huey_consumer worker.huey \
    -k thread \
    -w "$WORKER_THREADS" \
    -d 0.002 -m 0.02 -b 1.1

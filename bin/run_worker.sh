#!/usr/bin/env bash
# Runs the worker: huey_consumer worker.huey with GEMSEO_HTTP_WORKERS threads (default in settings.py).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(.venv/bin/python settings.py WORKER_THREADS)"
# -d/-m/-b: Huey's sleep between two empty looks at the queue, backing off up to 10 s by
# default. None of our queues needs it when all is well: SQLite's dequeue waits until a task is
# queued (worker.py, wakeup.py), PostgreSQL's on LISTEN, Redis's on a blocking pop. What is left
# is the pause after a failed look (the store down), kept short so that jobs start soon after.
# -k thread: each thread only waits on its job process; the work itself runs in those processes.
# Started as its script would be, with SIGINT's default action until the consumer sets its own
# handler (bin/run_server.sh says why).
exec .venv/bin/python -c 'import signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
sys.argv[0] = ".venv/bin/huey_consumer"
from huey.bin.huey_consumer import consumer_main
sys.exit(consumer_main())' worker.huey \
    -k thread \
    -w "$WORKER_THREADS" \
    -d 0.002 -m 0.02 -b 1.1

#!/usr/bin/env bash
# Runs the worker and the web app together until either ends or a SIGINT or SIGTERM comes: the
# end of bin/dev.sh, and the default command of the container image (Containerfile).
set -euo pipefail
cd "$(dirname "$0")/.."
# Job control puts each child in its own process group. Without it, bash starts background
# children with SIGINT ignored, and a Ctrl-C that came before the worker set its handler (while
# it imports GEMSEO) was lost: the worker ran on. Now this script alone gets the Ctrl-C (or the
# container's stop signal) and passes one SIGINT to each child: uvicorn shuts down, the worker finishes its running jobs (a
# second SIGINT would make either skip that). Their job processes end with them.
set -m
bin/run_worker.sh &
worker=$!
bin/run_server.sh &
server=$!
set +m
stopping=""
trap 'stopping=1; kill -INT "$server" "$worker" 2>/dev/null; wait "$server" "$worker"' INT TERM
status=0
wait -n "$server" "$worker" || status=$?
if [ -z "$stopping" ]; then
    kill -INT "$server" "$worker" 2>/dev/null || true
fi
wait "$server" "$worker" 2>/dev/null || true
exit "$status"

#!/usr/bin/env bash
# Idempotent setup: .venv from the pinned requirements, the root folders, the database schema.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# Reinstall only when the requirements changed since the last setup.
stamp=.venv/.gaas-requirements
wanted="$(cat requirements.txt ${GAAS_EXTRA_REQUIREMENTS:-} | sha256sum)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.txt ${GAAS_EXTRA_REQUIREMENTS:+-r $GAAS_EXTRA_REQUIREMENTS}
    echo "$wanted" > "$stamp"
fi
# GAAS_SKIP_INIT=1: only the .venv (an install run as root leaves the data to the service user).
if [ -z "${GAAS_SKIP_INIT:-}" ]; then
    .venv/bin/python admin.py init
fi

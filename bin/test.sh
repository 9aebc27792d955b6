#!/usr/bin/env bash
# Sets up (with the test requirements) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
GAAS_EXTRA_REQUIREMENTS=requirements-test.txt bin/setup.sh
# The dashboard tests drive Debian's Chromium; install it when missing and allowed to.
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "warning: chromium and chromium-driver are missing; the dashboard tests will fail" >&2
    fi
fi
exec .venv/bin/python -m pytest tests "$@"

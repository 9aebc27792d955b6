#!/usr/bin/env bash
# Sets up (with the test requirements) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
GAAS_EXTRA_REQUIREMENTS=requirements-test.txt bin/setup.sh
# The dashboard tests drive Debian's Chromium; the store and queue tests start their own
# PostgreSQL and Redis servers (tests/servers.py). Install what is missing, when allowed to.
packages=()
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    packages+=(chromium chromium-driver)
fi
if ! command -v initdb >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    packages+=(postgresql)
fi
if ! command -v redis-server >/dev/null; then
    packages+=(redis-server)
fi
if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        echo "warning: ${packages[*]} missing; the tests that need them will fail or skip" >&2
    fi
fi
exec .venv/bin/python -m pytest tests "$@"

#!/usr/bin/env bash
# Sets up (with the test requirements) and runs the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
GAAS_EXTRA_REQUIREMENTS=requirements-test.txt bin/setup.sh
# The fuzzing (tests/test_fuzz.py, about three minutes) and the container tests are stages of
# their own: `bin/test.sh --fuzz`, `bin/test.sh --containers`; CI runs all three.
tests=(tests --ignore=tests/test_fuzz.py)
# The suite on several pytest workers (pytest-xdist): alone, it leaves a third of two cores idle
# while services start and tests wait. One more worker than cores fills them;
# GAAS_TEST_WORKERS=0 runs it in this one process.
workers=(-n "${GAAS_TEST_WORKERS:-$(( $(nproc) + 1 ))}")
packages=()
if [ "${1:-}" = --fuzz ]; then
    shift
    tests=(tests/test_fuzz.py)
    workers=()
elif [ "${1:-}" = --containers ]; then
    shift
    tests=(tests/containers)
    workers=()
    # Debian's podman with runc (tests/containers/containers.conf says why), mmdebstrap to make
    # the base image, podman-compose for compose.yaml; aardvark-dns resolves its service names.
    for command in podman /usr/sbin/runc mmdebstrap podman-compose /usr/lib/podman/aardvark-dns; do
        command -v "$command" >/dev/null || packages+=("$(basename "$command")")
    done
fi
# The dashboard tests drive Debian's Chromium; the store and queue tests start their own
# PostgreSQL, Redis and OpenLDAP servers (tests/servers.py). Install what is missing, when allowed to.
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    packages+=(chromium chromium-driver)
fi
if ! command -v initdb >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    packages+=(postgresql)
fi
if ! command -v redis-server >/dev/null; then
    packages+=(redis-server)
fi
# The directory sign-in tests start Debian's OpenLDAP, with certificates made by openssl.
if [ ! -x /usr/sbin/slapd ]; then
    packages+=(slapd)
fi
if ! command -v openssl >/dev/null; then
    packages+=(openssl)
fi
if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        echo "warning: ${packages[*]} missing; the tests that need them will fail or skip" >&2
    fi
fi
exec .venv/bin/python -m pytest "${tests[@]}" ${workers[@]+"${workers[@]}"} "$@"

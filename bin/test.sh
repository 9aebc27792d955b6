#!/usr/bin/env bash
# Sets up (with the test requirements) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
GAAS_EXTRA_REQUIREMENTS=requirements-test.txt bin/setup.sh
exec .venv/bin/python -m pytest tests "$@"

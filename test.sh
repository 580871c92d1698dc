#!/usr/bin/env bash
# Run the test suite in the project venv (created on first use). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
. tools/activate.sh
exec python -m pytest -q "$@"

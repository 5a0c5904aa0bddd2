#!/usr/bin/env bash
# Command (2) of the README: install everything, then run the whole test suite. Integration
# tests start their own Kafka cluster and PostgreSQL (on ports apart from the demo's) once
# per session and stop them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy src
exec .venv/bin/python -m pytest "$@"

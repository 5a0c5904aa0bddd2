#!/usr/bin/env bash
# Command (1) of the README: install everything, then run the main job on the local embedded
# default (its own 3-broker Kafka cluster and PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/fraudstream demo "$@"

#!/usr/bin/env bash
# Installs everything fraudstream needs on a fresh Debian machine, idempotently:
# system packages (PostgreSQL server, JDK, Maven, Chromium) when missing, a Python virtualenv with the
# pinned dependencies, and the Apache Kafka jars (resolved by Maven into .cache/).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql postgresql-contrib)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v runuser >/dev/null 2>&1 || need_apt+=(util-linux)
# Debian's Chromium: the dashboard's browser test drives it through Playwright (never a
# downloaded browser build), so CI needs it as much as PostgreSQL.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  # Debian's package starts its own cluster on 5432; fraudstream runs its own server instead.
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.fraudstream-deps
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c requirements.lock -e '.[dev]'
  echo "$want" > "$stamp"
fi

# The broker jars (idempotent; cached under .cache/kafka/lib).
.venv/bin/python -c "from fraudstream.settings import load_settings; from fraudstream.infra.kafka import ensure_jars; print('kafka jars:', ensure_jars(load_settings()))"

"""Running the API next to other components (the demo): a child process and a generated
admin account."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

from fraudstream.api.auth import store
from fraudstream.api.auth.passwords import generate_password, hash_password
from fraudstream.settings import Settings

DEMO_ADMIN = "admin"


def ensure_admin(settings: Settings, name: str = DEMO_ADMIN) -> str:
    """Create (or reset) an admin user with a fresh random password and return the password."""
    password = generate_password()
    with psycopg.connect(settings.dsn, autocommit=True, connect_timeout=10) as conn:
        store.add_user(conn, name, "admin", hash_password(password), replace=True)
    return password


def start_api(
    settings: Settings, port: int, log_file: Path, timeout_s: float = 60.0
) -> subprocess.Popen[bytes]:
    """``fraudstream api`` as a child process (same environment); returns once it is ready."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraudstream.cli", "api", "--host", settings.api_host, "--port", str(port)],
        stdout=log_file.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    if proc.poll() is None:
        proc.terminate()
    raise RuntimeError(f"the API did not become ready; see {log_file}")

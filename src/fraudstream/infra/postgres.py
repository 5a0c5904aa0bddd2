"""The local PostgreSQL server: Debian's binaries on a project-owned data directory.

PostgreSQL refuses to run as root, and CI runs as root, so when we are root the server runs
as an unprivileged system user (created on first use) that owns the data directory. The
server listens on loopback TCP only; the bootstrap superuser is the configured role
(``admin``), as the official Docker image does with ``POSTGRES_USER``.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import structlog
from psycopg import sql

from fraudstream.infra.kafka import InfraError
from fraudstream.infra.processes import tail
from fraudstream.settings import Settings

log = structlog.get_logger(__name__)


def pg_bindir() -> Path:
    """Where the server binaries are (``pg_config`` is not always installed)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=_version_key)
    if candidates:
        return candidates[-1].parent
    found = shutil.which("postgres") or shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise InfraError(
        "PostgreSQL server binaries not found: run scripts/bootstrap.sh (installs Debian's postgresql)"
    )


def _version_key(p: Path) -> float:
    try:
        return float(p.parent.parent.name)
    except ValueError:
        return 0.0


class LocalPostgres:
    """Create, start, inspect and stop the local server described by ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.link = (settings.state_dir / "postgres").resolve()
        self.port = settings.pg_port

    # ---- where things live -----------------------------------------------------------
    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    @property
    def home(self) -> Path:
        """The real folder: the state folder, or a private one when the OS user can't reach it."""
        return self.link.resolve() if self.link.is_symlink() else self.link

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logfile(self) -> Path:
        return self.home / "postgres.log"

    def _run_as(self) -> list[str]:
        return ["runuser", "-u", self.settings.pg_os_user, "--"] if self.as_root else []

    def _ensure_os_user(self) -> None:
        if not self.as_root:
            return
        try:
            pwd.getpwnam(self.settings.pg_os_user)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 self.settings.pg_os_user],
                check=True,
            )

    def _user_can_reach(self, path: Path) -> bool:
        if not self.as_root:
            return True
        probe = subprocess.run([*self._run_as(), "test", "-w", str(path)], capture_output=True)
        return probe.returncode == 0

    def _prepare_home(self) -> None:
        """Make a data folder the server's OS user can own and reach."""
        if self.link.exists():
            return
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.link.mkdir()
        if not self.as_root:
            return
        user = pwd.getpwnam(self.settings.pg_os_user)
        os.chown(self.link, user.pw_uid, user.pw_gid)
        if self._user_can_reach(self.link):
            return
        # A parent folder (e.g. root's home) is closed to other users: keep the cluster in a
        # private folder of the server user's and point the state folder at it.
        self.link.rmdir()
        digest = hashlib.sha1(str(self.link).encode()).hexdigest()[:10]
        real = Path(tempfile.gettempdir()) / f"fraudstream-pg-{digest}"
        real.mkdir(mode=0o700, exist_ok=True)
        os.chown(real, user.pw_uid, user.pw_gid)
        self.link.symlink_to(real)
        log.info("postgres.datadir.relocated", path=str(real))

    # ---- lifecycle -------------------------------------------------------------------
    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*self._run_as(), str(pg_bindir() / tool), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
        if check and proc.returncode != 0:
            raise InfraError(
                f"{tool} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}\n"
                f"{tail(self.logfile)}"
            )
        return proc

    def initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self._ensure_os_user()
        self._prepare_home()
        pwfile = self.home / ".pwfile"
        pwfile.write_text(self.settings.pg_password + "\n")
        if self.as_root:
            user = pwd.getpwnam(self.settings.pg_os_user)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        pwfile.chmod(0o600)
        try:
            self._pg(
                "initdb", "-D", str(self.data_dir), "-U", self.settings.pg_user,
                f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=peer",
                "-E", "UTF8", "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# fraudstream local server\n"
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                "unix_socket_directories = ''\nmax_connections = 200\n"
                "shared_buffers = 256MB\nwork_mem = 16MB\nmaintenance_work_mem = 128MB\n"
                "max_wal_size = 2GB\ncheckpoint_timeout = 15min\nwal_compression = on\n"
                "logging_collector = off\nlog_min_messages = warning\n"
            )

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._pg("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def up(self) -> None:
        """Idempotently create, start and provision the server and database."""
        self.initdb()
        if not self.is_running():
            if self.as_root:
                subprocess.run(["chown", self.settings.pg_os_user, str(self.home)], check=True)
            self._pg(
                "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.logfile),
                "-w", "-t", str(int(self.settings.infra_start_timeout_s)),
            )
        self.wait_ready()
        self.ensure_database()

    def admin_dsn(self, dbname: str = "postgres") -> str:
        s = self.settings
        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=self.port, user=s.pg_user, password=s.pg_password, dbname=dbname
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.admin_dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise InfraError(f"PostgreSQL not answering: {exc}\n{tail(self.logfile)}") from exc
                time.sleep(0.3)

    def ensure_database(self) -> None:
        name = self.settings.pg_database
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def down(self, purge: bool = False) -> None:
        if self.is_running():
            self._pg("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60")
        if purge:
            real = self.home
            if self.link.is_symlink():
                self.link.unlink()
            shutil.rmtree(real, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again (fault injection in tests)."""
        self._pg("pg_ctl", "restart", "-D", str(self.data_dir), "-m", "fast", "-w",
                 "-l", str(self.logfile))

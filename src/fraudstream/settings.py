"""Settings, read once at the process edge.

Every component takes a :class:`Settings` object instead of reading the environment itself,
so the same code runs against the local embedded cluster or a user's own cluster: only
``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` and ``FRAUDSTREAM_*`` variables change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_KAFKA_BASE_PORT = 19092
DEFAULT_PG_PORT = 55432
DEFAULT_DATABASE_URL = f"postgresql://admin:admin@127.0.0.1:{DEFAULT_PG_PORT}/fraud_detection"
#: The local embedded default's detector login (created by ``infra up``, loopback-only server).
DEFAULT_DETECTOR_DATABASE_URL = (
    f"postgresql://fraudstream_detect:detect@127.0.0.1:{DEFAULT_PG_PORT}/fraud_detection"
)


class Settings(BaseSettings):
    """Configuration of every fraudstream process."""

    model_config = SettingsConfigDict(
        env_prefix="FRAUDSTREAM_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # --- Kafka client -------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Comma-separated host:port list; empty means the local embedded cluster.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_ssl_certificate_location: str | None = None
    kafka_ssl_key_location: str | None = None

    topic_input: str = "input"
    topic_output: str = "output"
    topic_training: str = "training"
    topic_dlq: str = "input.dlq"
    topic_partitions: int = 3
    topic_replication_factor: int = 3
    topic_retention_ms: int = -1  # input/training: event-time stamped, state is rebuilt from them

    # --- PostgreSQL ---------------------------------------------------------------------
    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL),
        validation_alias=AliasChoices("DATABASE_URL", "FRAUDSTREAM_DATABASE_URL"),
        description="The schema owner's connection: migrations, rule and model registries, CLI.",
    )
    detector_database_url: SecretStr | None = Field(
        default=None,
        description="The detector workers' connection, a member of the least-privilege "
        "`fraudstream_detector` role (see `fraudstream db grant-detector`). Unset: the local "
        "embedded default's detector login when DATABASE_URL is the default too, else DATABASE_URL.",
    )

    # --- API and dashboard (fraudstream api) -------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Signs browser sessions; empty: a random secret generated once and kept in PostgreSQL
    # (table api_secrets), so every API process and restart agree on it.
    api_session_secret: SecretStr | None = None
    api_session_max_age_s: int = 8 * 3600
    api_secure_cookies: bool = False  # set behind TLS: cookies then carry the Secure flag
    api_stats_window_minutes: int = 60

    # --- Detector ------------------------------------------------------------------------
    # Encode and publish decisions in a process of the worker's own (the second core), not
    # on the thread that decides (see pipeline.publisher).
    publisher_process: bool = True
    # How much lower the publisher process's CPU priority is than its worker's (a nice
    # increment, 0-19; raising priority needs privileges, lowering it never does). On a box
    # whose cores are all busy the worker's deciding thread is the bottleneck, and it waited
    # in the run queue behind the publisher's encoding a third of the time: see README.
    publisher_nice: int = Field(10, ge=0, le=19)

    # --- Logs ---------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON lines unless stderr is a terminal

    # --- Local embedded infrastructure --------------------------------------------------
    state_dir: Path = Path(".state")
    cache_dir: Path = Path(".cache")
    kafka_base_port: int = DEFAULT_KAFKA_BASE_PORT
    kafka_nodes: int = 3
    kafka_heap: str = "512m"
    infra_start_timeout_s: float = 120.0
    pg_os_user: str = "fraudstream"

    def bootstrap_servers(self, nodes: int | None = None) -> str:
        """The bootstrap list: the configured one, or the local cluster's loopback ports."""
        if self.kafka_bootstrap_servers:
            return self.kafka_bootstrap_servers
        n = nodes or self.kafka_nodes
        return ",".join(f"127.0.0.1:{self.kafka_base_port + i}" for i in range(n))

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by producers, consumers and admin clients."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers(),
            "security.protocol": self.kafka_security_protocol,
        }
        optional = {
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            ),
            "ssl.ca.location": self.kafka_ssl_ca_location,
            "ssl.certificate.location": self.kafka_ssl_certificate_location,
            "ssl.key.location": self.kafka_ssl_key_location,
        }
        conf.update({k: v for k, v in optional.items() if v})
        return conf

    @model_validator(mode="after")
    def _local_detector_default(self) -> Settings:
        """On the local embedded default the detector runs least-privileged out of the box."""
        if self.detector_database_url is None and self.dsn == DEFAULT_DATABASE_URL:
            self.detector_database_url = SecretStr(DEFAULT_DETECTOR_DATABASE_URL)
        return self

    @property
    def detector_dsn(self) -> str:
        """The detector's connection string: its own role if configured, else the owner's."""
        url = self.detector_database_url.get_secret_value() if self.detector_database_url else ""
        return url or self.dsn

    def for_detector(self) -> Settings:
        """These settings with the detector's connection as :attr:`dsn`: what a detector
        worker is given, so every connection it opens is the least-privileged one."""
        return self.model_copy(update={"database_url": SecretStr(self.detector_dsn)})

    @property
    def dsn(self) -> str:
        """The PostgreSQL connection string (kept secret in reprs and logs)."""
        return self.database_url.get_secret_value()

    @property
    def pg_port(self) -> int:
        return urlsplit(self.dsn).port or 5432

    @property
    def pg_user(self) -> str:
        return urlsplit(self.dsn).username or "admin"

    @property
    def pg_password(self) -> str:
        return urlsplit(self.dsn).password or ""

    @property
    def pg_database(self) -> str:
        return urlsplit(self.dsn).path.lstrip("/") or "fraud_detection"


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and ``.env``) once; explicit overrides win."""
    return Settings(**overrides)

"""The local embedded Kafka cluster: real Apache Kafka brokers in KRaft combined mode.

Jars are resolved by Maven from the ``pom.xml`` shipped in ``resources/`` into a cache folder;
each node is one JVM (``kafka.Kafka``) with its own properties, data and log directory under
the state folder. Heap and thread counts are sized for a small (2-core) machine.
"""

from __future__ import annotations

import base64
import shutil
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from fraudstream.infra.processes import (
    error_lines,
    is_running,
    kill,
    port_free,
    read_pid,
    tail,
    terminate,
)
from fraudstream.settings import Settings

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

log = structlog.get_logger(__name__)

KAFKA_MAIN = "kafka.Kafka"
MARKER = "fraudstream-kafka-node"
SCRAM_MECHANISM = "SCRAM-SHA-512"
TLS_PORT_OFFSET = 200  # a secured node's SASL_SSL listener: its broker port + this
START_RESTARTS = 2  # a node that dies while the cluster comes up is started again this often
PORT_WAIT_S = 10.0  # how long a node's start waits for its ports to be released


class InfraError(RuntimeError):
    """A local service could not be brought up; the message carries the log's tail."""


@dataclass(frozen=True)
class ScramUser:
    name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class BrokerSecurity:
    """Authenticated client listeners: SASL/SCRAM-SHA-512 over plaintext on each broker port
    and, given a PKCS12 keystore, over TLS (SASL_SSL) on broker port + ``TLS_PORT_OFFSET``.

    The SCRAM credentials are written into the metadata log when the storage is formatted (no
    broker has to be up to create them). The first user is the brokers' own, for inter-broker
    traffic; the controller listener stays on loopback plaintext.
    """

    users: tuple[ScramUser, ...]
    keystore: Path | None = None
    keystore_password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.users:
            raise ValueError("a secured cluster needs at least the brokers' own SCRAM user")
        for u in self.users:  # the storage tool's --add-scram syntax has no escaping
            if not u.name.replace("-", "").replace("_", "").isalnum() or any(
                c in u.password for c in ',[]="'
            ):
                raise ValueError(f"unsupported SCRAM user name or password for {u.name!r}")

    def jaas(self) -> str:
        broker = self.users[0]
        return (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                f'username="{broker.name}" password="{broker.password}";')


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    broker_port: int
    controller_port: int
    home: Path

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def stdout_file(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def marker(self) -> str:
        return f"-D{MARKER}={self.home}"


def resource_path(name: str) -> Path:
    return Path(str(resources.files("fraudstream.infra.resources").joinpath(name)))


def jars_dir(settings: Settings) -> Path:
    return (settings.cache_dir / "kafka" / "lib").resolve()


def ensure_jars(settings: Settings) -> Path:
    """Resolve the broker jars with Maven once; later calls reuse the cache."""
    lib = jars_dir(settings)
    stamp = lib / ".complete"
    if stamp.exists():
        return lib
    if shutil.which("mvn") is None:
        raise InfraError("Maven (mvn) is needed to resolve the Kafka jars: run scripts/bootstrap.sh")
    lib.mkdir(parents=True, exist_ok=True)
    log.info("kafka.jars.resolve", into=str(lib))
    cmd = [
        "mvn", "-q", "-B", "-f", str(resource_path("pom.xml")),
        "dependency:copy-dependencies", f"-DoutputDirectory={lib}", "-DincludeScope=runtime",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(f"mvn failed to resolve Kafka jars:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    stamp.write_text("ok\n")
    return lib


def new_cluster_id() -> str:
    """A random KRaft cluster id (22 base64url characters) that does not start with '-',
    which the storage tool's argument parser would take for an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if cid[0].isalnum():
            return cid


class KafkaCluster:
    """Start, inspect and stop the local KRaft cluster described by ``settings``."""

    def __init__(
        self, settings: Settings, nodes: int | None = None, security: BrokerSecurity | None = None
    ) -> None:
        self.settings = settings
        self.security = security
        self.home = (settings.state_dir / "kafka").resolve()
        self.n = nodes or self._recorded_nodes() or settings.kafka_nodes
        base = settings.kafka_base_port
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # the nodes this object started
        self._admin: AdminClient | None = None
        self.nodes = [
            KafkaNode(i + 1, base + i, base + 100 + i, self.home / f"node-{i + 1}")
            for i in range(self.n)
        ]

    # ---- configuration ---------------------------------------------------------------
    def _recorded_nodes(self) -> int | None:
        f = self.home / "nodes"
        return int(f.read_text()) if f.exists() else None

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.broker_port}" for n in self.nodes)

    @property
    def tls_bootstrap(self) -> str:
        """The SASL_SSL listeners (a secured cluster with a keystore only)."""
        return ",".join(f"127.0.0.1:{n.broker_port + TLS_PORT_OFFSET}" for n in self.nodes)

    def client_config(self) -> dict[str, str | int | float]:
        """librdkafka settings of an administrative client (the brokers' own SCRAM user)."""
        conf: dict[str, str | int | float] = {"bootstrap.servers": self.bootstrap}
        if self.security is not None:
            user = self.security.users[0]
            conf.update({
                "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": SCRAM_MECHANISM,
                "sasl.username": user.name, "sasl.password": user.password,
            })
        return conf

    def cluster_id(self) -> str:
        f = self.home / "cluster-id"
        if not f.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            f.write_text(new_cluster_id())
        return f.read_text().strip()

    def properties(self, node: KafkaNode) -> str:
        n = self.n
        rf = min(3, n)
        isr = min(2, n)
        voters = ",".join(f"{x.node_id}@127.0.0.1:{x.controller_port}" for x in self.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.broker_port},"
            f"CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.broker_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": node.data_dir,
            "num.partitions": 3,
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": 6,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": 0,
            # A 2-core machine: few threads per broker, three brokers share the cores.
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.replica.fetchers": 1,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.threads": 1,
            "log.retention.hours": 168,
            "log.segment.bytes": 256 * 1024 * 1024,
            "transaction.remove.expired.transaction.cleanup.interval.ms": 60000,
        }
        if self.security is not None:
            props.update(self._secured_listeners(node))
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _secured_listeners(self, node: KafkaNode) -> dict[str, object]:
        sec = self.security
        assert sec is not None
        client = [f"SASL_PLAINTEXT://127.0.0.1:{node.broker_port}"]
        props: dict[str, object] = {
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": sec.jaas(),
        }
        if sec.keystore is not None:
            client.append(f"SASL_SSL://127.0.0.1:{node.broker_port + TLS_PORT_OFFSET}")
            props.update({
                f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": sec.jaas(),
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": sec.keystore.resolve(),
                "ssl.keystore.password": sec.keystore_password,
                "ssl.key.password": sec.keystore_password,
            })
        props.update({
            "listeners": ",".join([*client, f"CONTROLLER://127.0.0.1:{node.controller_port}"]),
            "advertised.listeners": ",".join(client),
            "listener.security.protocol.map":
                "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        })
        return props

    def _java(self, main: str, node: KafkaNode, *args: str) -> list[str]:
        lib = ensure_jars(self.settings)
        heap = self.settings.kafka_heap
        return [
            "java", f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:CICompilerCount=2", "-XX:ParallelGCThreads=1", "-XX:ConcGCThreads=1",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={node.log_dir}",
            f"-XX:ErrorFile={node.log_dir}/hs_err_%p.log",
            f"-Dlog4j2.configurationFile={resource_path('log4j2.properties')}",
            node.marker, "-cp", f"{lib}/*", main, *args,
        ]

    # ---- lifecycle -------------------------------------------------------------------
    def _format(self, node: KafkaNode) -> None:
        if (node.data_dir / "meta.properties").exists():
            return
        cmd = self._java(
            "kafka.tools.StorageTool", node, "format", "-t", self.cluster_id(),
            "-c", str(node.config_file), "--ignore-formatted",
            *[arg for u in (self.security.users if self.security else ()) for arg in (
                "--add-scram", f"{SCRAM_MECHANISM}=[name={u.name},password={u.password}]")],
        )
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise InfraError(
                f"Kafka node {node.node_id}: storage format failed\n{proc.stdout}{proc.stderr}"
            )

    def _start(self, node: KafkaNode) -> None:
        if is_running(read_pid(node.pid_file), node.marker):
            return
        self._check_ports(node)
        node.log_dir.mkdir(parents=True, exist_ok=True)
        with node.stdout_file.open("ab") as out:
            proc = subprocess.Popen(
                self._java(KAFKA_MAIN, node, str(node.config_file)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        node.pid_file.write_text(str(proc.pid))
        self._procs[node.node_id] = proc

    def ports(self, node: KafkaNode) -> list[int]:
        """The loopback ports a node listens on."""
        tls = self.security is not None and self.security.keystore is not None
        return [node.broker_port, node.controller_port,
                *([node.broker_port + TLS_PORT_OFFSET] if tls else [])]

    def _check_ports(self, node: KafkaNode) -> None:
        """Refuse to start a node whose ports another process holds: the JVM would only die
        a little later, with the reason deep in its log."""
        deadline = time.monotonic() + PORT_WAIT_S  # a node just killed may still hold them
        while (taken := [p for p in self.ports(node) if not port_free(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if taken:
            raise InfraError(
                f"Kafka node {node.node_id}: port(s) {', '.join(map(str, taken))} on 127.0.0.1 "
                "in use by another process (FRAUDSTREAM_KAFKA_BASE_PORT chooses other ports)"
            )

    def up(self) -> None:
        """Idempotently format, start and wait for every node."""
        recorded = self._recorded_nodes()
        if recorded and recorded != self.n and self.running_nodes():
            raise InfraError(
                f"a {recorded}-node cluster is running; run `fraudstream infra down` first"
            )
        if recorded and recorded != self.n:
            raise InfraError(
                f"state holds a {recorded}-node cluster; `fraudstream infra down --purge` to change"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "nodes").write_text(str(self.n))
        for node in self.nodes:
            node.home.mkdir(parents=True, exist_ok=True)
            node.config_file.write_text(self.properties(node))
        ensure_jars(self.settings)
        self.cluster_id()  # create it once, before the parallel formats read it
        with ThreadPoolExecutor(self.n) as pool:
            list(pool.map(self._format, self.nodes))
        for node in self.nodes:
            self._start(node)
        self.wait_ready()

    def running_nodes(self) -> list[KafkaNode]:
        return [n for n in self.nodes if is_running(read_pid(n.pid_file), n.marker)]

    def wait_ready(self) -> None:
        """Block until every broker is registered, or raise with the failing node's log.

        A node that dies while the cluster comes up is started again (``START_RESTARTS``
        times) after its exit status and errors are logged: one JVM lost to a transient
        cause (a signal from outside, a port still held for a moment) should not fail the
        whole start, while a node that keeps dying still does, with the reason.
        """
        restarts = dict.fromkeys((n.node_id for n in self.nodes), START_RESTARTS)
        deadline = time.monotonic() + self.settings.infra_start_timeout_s
        while not self._registered():
            for node in self.nodes:
                if self._alive(node):
                    continue
                report = self._death_report(node)
                if restarts[node.node_id] == 0:
                    raise InfraError(
                        f"Kafka node {node.node_id} exited during start-up "
                        f"(port {node.broker_port}), {START_RESTARTS} restarts spent: {report}"
                    )
                restarts[node.node_id] -= 1
                log.warning("kafka.node.restart", node=node.node_id, report=report)
                self._start(node)
            if time.monotonic() > deadline:
                raise InfraError(
                    f"Kafka cluster not ready after {self.settings.infra_start_timeout_s:.0f}s. "
                    f"Last log lines of node 1:\n{tail(self.nodes[0].log_dir / 'server.log')}"
                )
            time.sleep(0.5)

    def _registered(self) -> bool:
        """Whether every node is a registered broker, as a client sees the cluster."""
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            self._admin = AdminClient({**self.client_config(), "log_level": 0})
        try:
            return len(self._admin.list_topics(timeout=2).brokers) >= self.n
        except Exception:  # noqa: BLE001 - not answering yet
            return False

    def _alive(self, node: KafkaNode) -> bool:
        proc = self._procs.get(node.node_id)
        if proc is not None:  # our own child: its exit status is the truth
            return proc.poll() is None
        return is_running(read_pid(node.pid_file), node.marker)

    def _death_report(self, node: KafkaNode) -> str:
        """How a node ended and what it logged: exit status, its ERROR lines, a JVM crash
        file, and the tails of its stdout and server log."""
        proc = self._procs.get(node.node_id)
        code = proc.poll() if proc is not None else None
        if code is None:
            status = "exit status unknown (not started by this process)"
        elif code < 0:
            status = f"killed by signal {signal.Signals(-code).name}"
        else:
            status = f"exit code {code}"
        server_log = node.log_dir / "server.log"
        errors = error_lines(server_log)
        crashes = sorted(node.log_dir.glob("hs_err_*.log"))
        return "\n".join([
            status,
            "ERROR lines of server.log:", *(errors or ["(none)"]),
            *(f"JVM crash report: {c}\n{tail(c, 15)}" for c in crashes[-1:]),
            "stdout:", tail(node.stdout_file, 15), "server.log:", tail(server_log, 15),
        ])

    def down(self, purge: bool = False) -> None:
        procs = [(p, n.marker) for n in self.nodes if (p := read_pid(n.pid_file)) is not None]
        terminate(procs, timeout_s=45)
        for node in self.nodes:
            node.pid_file.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(self.home, ignore_errors=True)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one broker (fault injection in tests)."""
        node = self.nodes[node_id - 1]
        kill(read_pid(node.pid_file), node.marker)

    def start_node(self, node_id: int) -> None:
        self._start(self.nodes[node_id - 1])

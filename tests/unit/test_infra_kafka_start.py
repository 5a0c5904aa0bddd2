"""A node that dies while the cluster comes up: restarted, then reported with its reason.

The JVM is replaced by a small Python process carrying the node's marker, so the start-up
supervision (exit status, restarts, the report) is tested without Kafka; the real brokers'
start is covered by every integration test.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from fraudstream.infra.kafka import START_RESTARTS, InfraError, KafkaCluster, KafkaNode
from fraudstream.infra.processes import port_free
from fraudstream.settings import Settings

# Each start appends a line to starts.txt; the first `dies` starts log an error and exit 3.
NODE = """
import pathlib, sys, time
home = pathlib.Path(sys.argv[1]); dies = int(sys.argv[2])
starts = home / "starts.txt"
n = len(starts.read_text().splitlines()) + 1 if starts.exists() else 1
starts.write_text("x\\n" * n)
if n <= dies:
    (home / "logs").mkdir(exist_ok=True)
    with (home / "logs" / "server.log").open("a") as f:
        f.write("[t] INFO KafkaConfig values:\\n\\tlisteners = x\\n")
        f.write("[t] ERROR Exiting Kafka due to fatal exception (kafka.Kafka)\\n")
        f.write("java.net.BindException: Address already in use\\n\\tat x\\n[t] INFO after\\n")
    sys.exit(3)
time.sleep(60)
"""


class FakeCluster(KafkaCluster):
    """Nodes are Python processes; the cluster is 'registered' once every node is up
    and has been seen alive on two checks."""

    def __init__(self, settings: Settings, dies: dict[int, int]) -> None:
        super().__init__(settings, nodes=3)
        self.dies = dies
        self.checks = 0

    def _java(self, main: str, node: KafkaNode, *args: str) -> list[str]:
        return [sys.executable, "-c", NODE, str(node.home), str(self.dies.get(node.node_id, 0)),
                node.marker]

    def _registered(self) -> bool:
        self.checks += 1
        return self.checks > 2 * (START_RESTARTS + 2) and all(self._alive(n) for n in self.nodes)


def _free_base() -> int:
    """A base port whose 3 broker and 3 controller ports are free (a real cluster may run)."""
    for base in range(41000, 60000, 300):
        if all(port_free(base + d) for d in (0, 1, 2, 100, 101, 102)):
            return base
    raise AssertionError("no free ports")


def _start(tmp_path: Path, dies: dict[int, int]) -> FakeCluster:
    settings = Settings(state_dir=tmp_path, infra_start_timeout_s=30, kafka_base_port=_free_base())
    c = FakeCluster(settings, dies)
    for node in c.nodes:
        node.log_dir.mkdir(parents=True)
        c._start(node)
    return c


def _starts(node: KafkaNode) -> int:
    return len((node.home / "starts.txt").read_text().splitlines())


def test_a_node_dying_during_start_up_is_started_again(tmp_path: Path) -> None:
    c = _start(tmp_path, {2: START_RESTARTS})
    try:
        c.wait_ready()
        assert [_starts(n) for n in c.nodes] == [1, START_RESTARTS + 1, 1]
        assert all(c._alive(n) for n in c.nodes)
    finally:
        c.down()
    assert not any(c._alive(n) for n in c.nodes)


def test_a_node_that_keeps_dying_is_reported_with_its_reason(tmp_path: Path) -> None:
    c = _start(tmp_path, {2: 99})
    try:
        with pytest.raises(InfraError) as err:
            c.wait_ready()
    finally:
        c.down()
    text = str(err.value)
    assert _starts(c.nodes[1]) == START_RESTARTS + 1
    assert "Kafka node 2 exited during start-up" in text
    assert "exit code 3" in text
    assert "ERROR Exiting Kafka due to fatal exception" in text
    assert "BindException: Address already in use" in text  # the stack trace's start
    assert "INFO after" not in text.split("ERROR lines of server.log:")[1].split("stdout:")[0]


def test_a_node_killed_by_a_signal_says_so(tmp_path: Path) -> None:
    c = _start(tmp_path, {})
    try:
        os.kill(c._procs[1].pid, signal.SIGKILL)
        c._procs[1].wait()
        assert "killed by signal SIGKILL" in c._death_report(c.nodes[0])
    finally:
        c.down()


def test_a_port_held_by_another_process_is_named_before_any_start(tmp_path: Path, monkeypatch) -> None:
    import socket

    import fraudstream.infra.kafka as kafka_mod

    monkeypatch.setattr(kafka_mod, "PORT_WAIT_S", 0.5)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        c = FakeCluster(Settings(state_dir=tmp_path, kafka_base_port=port - 100), {})  # node 1's controller
        with pytest.raises(InfraError, match=f"Kafka node 1: port\\(s\\) {port} on 127.0.0.1 in use"):
            c._start(c.nodes[0])
    assert not (c.nodes[0].pid_file).exists()

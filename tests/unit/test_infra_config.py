from __future__ import annotations

from pathlib import Path

from fraudstream.db.migrate import available
from fraudstream.infra.kafka import KafkaCluster
from fraudstream.infra.topics import topic_specs
from fraudstream.settings import Settings


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_three_node_properties(tmp_path: Path) -> None:
    c = KafkaCluster(Settings(state_dir=tmp_path, kafka_base_port=30000), nodes=3)
    p = _props(c.properties(c.nodes[1]))
    assert p["node.id"] == "2"
    assert p["process.roles"] == "broker,controller"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:30100,2@127.0.0.1:30101,3@127.0.0.1:30102"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:30001,CONTROLLER://127.0.0.1:30101"
    assert p["default.replication.factor"] == "3"
    assert p["min.insync.replicas"] == "2"
    assert p["transaction.state.log.min.isr"] == "2"


def test_single_node_caps_replication(tmp_path: Path) -> None:
    c = KafkaCluster(Settings(state_dir=tmp_path), nodes=1)
    p = _props(c.properties(c.nodes[0]))
    assert p["default.replication.factor"] == "1"
    assert p["min.insync.replicas"] == "1"
    specs = topic_specs(Settings(), brokers=1)
    assert {s.replication_factor for s in specs} == {1}
    assert {s.config["min.insync.replicas"] for s in specs} == {"1"}


def test_topics_match_the_contract() -> None:
    specs = {s.name: s for s in topic_specs(Settings(), brokers=3)}
    for name in ("input", "output", "training", "input.dlq"):
        assert specs[name].partitions == 3
        assert specs[name].replication_factor == 3
        assert specs[name].config["min.insync.replicas"] == "2"
    assert specs["input"].config["retention.ms"] == "-1"


# Numbers handed out to branches developed in parallel (0003: partition fencing); a gap there
# is expected until they merge, and harmless (pending migrations are applied in order).
RESERVED_MIGRATIONS = {3}


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in available()]
    assert versions == sorted(set(versions))
    assert set(versions) | RESERVED_MIGRATIONS >= set(range(1, max(versions) + 1))


def test_cluster_ids_never_look_like_options() -> None:
    from fraudstream.infra.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(2000)]
    assert all(len(c) == 22 and c[0].isalnum() for c in ids)
    assert len(set(ids)) == len(ids)

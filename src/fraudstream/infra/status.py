"""What ``fraudstream infra status`` reports: brokers, quorum, topics, PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from confluent_kafka.admin import AdminClient

from fraudstream.infra.kafka import KafkaCluster
from fraudstream.settings import Settings


@dataclass
class TopicStatus:
    name: str
    partitions: int
    replication_factor: int
    min_isr: int  # the smallest ISR over the topic's partitions
    leaders: list[int]


@dataclass
class ClusterStatus:
    bootstrap: str
    brokers: list[str] = field(default_factory=list)
    quorum: dict[str, object] = field(default_factory=dict)
    topics: list[TopicStatus] = field(default_factory=list)
    kafka_error: str | None = None
    postgres_ok: bool = False
    postgres_detail: str = ""


def quorum_state(cluster: KafkaCluster) -> dict[str, object]:
    """The KRaft quorum as each local node last wrote it (leader, epoch, voters)."""
    out: dict[str, object] = {}
    for node in cluster.nodes:
        f = Path(node.data_dir) / "__cluster_metadata-0" / "quorum-state"
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        out = {"leader": data.get("leaderId"), "epoch": data.get("leaderEpoch")}
        voters = data.get("currentVoters") or []
        out["voters"] = sorted(v.get("voterId") for v in voters) or [n.node_id for n in cluster.nodes]
        if out["leader"] not in (None, -1):
            break
    return out


def collect(settings: Settings, cluster: KafkaCluster | None = None) -> ClusterStatus:
    bootstrap = settings.bootstrap_servers(cluster.n if cluster else None)
    st = ClusterStatus(bootstrap=bootstrap)
    try:
        conf = {**settings.kafka_client_config(), "bootstrap.servers": bootstrap, "log_level": 0}
        admin = AdminClient(conf)
        md = admin.list_topics(timeout=5)
        brokers = sorted(md.brokers.values(), key=lambda b: b.id)
        st.brokers = [f"{b.id}@{b.host}:{b.port}" for b in brokers]
        for name in sorted(md.topics):
            if name.startswith("__"):
                continue
            parts = md.topics[name].partitions.values()
            st.topics.append(
                TopicStatus(
                    name=name,
                    partitions=len(parts),
                    replication_factor=min((len(p.replicas) for p in parts), default=0),
                    min_isr=min((len(p.isrs) for p in parts), default=0),
                    leaders=[p.leader for p in parts],
                )
            )
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        st.kafka_error = str(exc)
    if cluster is not None:
        st.quorum = quorum_state(cluster)
    try:
        with psycopg.connect(settings.dsn, connect_timeout=3) as conn:
            row = conn.execute("SELECT current_user, current_database(), version()").fetchone()
            assert row is not None
            st.postgres_ok = True
            st.postgres_detail = f"{row[0]}@{row[1]} ({str(row[2]).split(' on ')[0]})"
    except Exception as exc:  # noqa: BLE001
        st.postgres_detail = str(exc).strip().splitlines()[0] if str(exc) else repr(exc)
    return st

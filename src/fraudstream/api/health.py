"""``/livez`` (the process answers) and ``/readyz`` (it can reach Kafka and PostgreSQL).

The only endpoints open without authentication: they reveal nothing but up or down.
"""

from __future__ import annotations

from typing import Annotated

from confluent_kafka import KafkaException
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from psycopg import Error as PgError
from psycopg_pool import PoolTimeout

from fraudstream.api.services import Services, services

router = APIRouter(tags=["health"])


@router.get("/livez")
def livez() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


def _kafka(svc: Services) -> str:
    try:
        md = svc.admin.list_topics(timeout=3)
    except KafkaException as exc:
        return f"unreachable: {exc.args[0]}"
    if not md.brokers:
        return "no brokers"
    if svc.settings.topic_training not in md.topics:
        return f"topic {svc.settings.topic_training} missing"
    return "ok"


def _postgres(svc: Services) -> str:
    try:
        with svc.db(timeout_s=3) as conn:
            conn.execute("SELECT 1 FROM fraudulent_transactions LIMIT 0")
    except (PgError, PoolTimeout) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


@router.get("/readyz", responses={503: {"description": "Kafka or PostgreSQL unreachable"}})
def readyz(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    """Readiness: Kafka answers (with the training topic) and PostgreSQL answers (schema there)."""
    checks = {"kafka": _kafka(svc), "postgres": _postgres(svc)}
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)

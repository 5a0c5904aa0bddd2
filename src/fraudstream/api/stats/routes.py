"""``/api/v1/stats``: the overview's numbers and time series."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from fraudstream.api.auth.deps import Analyst
from fraudstream.api.services import Services, services

router = APIRouter(prefix="/api/v1", tags=["stats"])


class Stats(BaseModel):
    now: int
    bucket_seconds: float
    collecting: bool
    last_minute: dict[str, Any]
    lag_by_partition: dict[str, int]
    open_alerts: dict[str, int]
    series: list[dict[str, Any]]


@router.get("/stats", response_model=Stats)
def stats(
    svc: Annotated[Services, Depends(services)],
    _p: Analyst,
    minutes: Annotated[int, Query(ge=1, le=1440)] = 30,
) -> Stats:
    """Throughput, decision mix, alert and fraud rates, latency percentiles and consumer lag:
    totals over the last minute and a series over the last ``minutes``; plus the open alerts."""
    now = int(time.time() * 1000)
    collector = svc.stats
    with svc.db() as conn:
        rows = conn.execute(
            "SELECT decision, count(*) FROM fraudulent_transactions WHERE review_status = 'open' GROUP BY 1"
        ).fetchall()
    if collector is None:
        return Stats(now=now, bucket_seconds=0, collecting=False, last_minute={}, lag_by_partition={},
                     open_alerts={r[0]: int(r[1]) for r in rows}, series=[])
    w = collector.window
    return Stats(
        now=now, bucket_seconds=w.bucket_ms / 1000, collecting=collector.assigned and collector.is_alive(),
        last_minute=w.summary(now, 60), lag_by_partition={str(k): v for k, v in collector.lag.items()},
        open_alerts={r[0]: int(r[1]) for r in rows}, series=w.series(now, minutes),
    )

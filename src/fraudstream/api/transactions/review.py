"""An analyst's verdict: update the row and publish the label, atomically enough.

The row is updated (and so locked) inside a transaction, the label is published and
acknowledged, and only then is the transaction committed. If publishing fails the update is
rolled back and the analyst sees an error, so a reviewed row always has its label. If the
commit itself failed after publishing, the analyst retries and a second identical label is
sent, which is harmless: a later label for the same transaction replaces the earlier one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import structlog

from fraudstream.api.labels import analyst_label
from fraudstream.api.services import Services

log = structlog.get_logger(__name__)
Verdict = Literal["confirmed_fraud", "legitimate"]

_UPDATE = (
    "UPDATE fraudulent_transactions SET review_status = %s, reviewed_by = %s,"
    " reviewed_at = now(), review_comment = %s WHERE transaction_id = %s RETURNING reviewed_at"
)


def review(svc: Services, transaction_id: str, verdict: Verdict, reviewer: str,
           comment: str | None) -> datetime | None:
    """Record the verdict and publish it on ``training``; None when there is no such alert."""
    with svc.db() as conn, conn.transaction():
        row = conn.execute(_UPDATE, (verdict, reviewer, comment, transaction_id)).fetchone()
        if row is None:
            return None
        reviewed_at: datetime = row[0]
        svc.labels.publish(analyst_label(transaction_id, verdict == "confirmed_fraud", reviewed_at))
    log.info("api.review", transaction_id=transaction_id, verdict=verdict, reviewer=reviewer)
    return reviewed_at

"""``/api/v1/transactions``: the alert queue, one alert in detail, and the two verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import AwareDatetime, BaseModel, Field

from fraudstream.api.auth.deps import Analyst
from fraudstream.api.metrics import LABELS_PUBLISHED
from fraudstream.api.services import Services, services
from fraudstream.api.transactions import query as q
from fraudstream.api.transactions.baseline import Baseline, customer_baseline
from fraudstream.api.transactions.review import Verdict, review

router = APIRouter(prefix="/api/v1/transactions", tags=["transactions"])
Svc = Annotated[Services, Depends(services)]
NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"  # ids never hold control characters (the input contract)
IdText = Annotated[str, Path(min_length=1, max_length=128, pattern=NO_CONTROL)]


class TransactionSummary(BaseModel):
    transaction_id: str
    tx_datetime: datetime
    customer_id: str
    terminal_id: str
    tx_amount: float
    currency: str
    score: float
    decision: str
    reasons: list[str]
    review_status: str
    reviewed_by: str | None
    reviewed_at: datetime | None
    detected_at: datetime


class TransactionPage(BaseModel):
    items: list[TransactionSummary]
    total: int = Field(description=f"Matching rows, counted up to {q.COUNT_CAP} (see total_capped).")
    total_capped: bool
    limit: int
    offset: int


class TransactionDetail(TransactionSummary):
    channel: str | None
    merchant_category: str | None
    country: str | None
    lat: float | None
    lon: float | None
    features: dict[str, float]
    model_version: str | None
    rules_version: str | None
    review_comment: str | None
    source_partition: int | None
    source_offset: int | None
    customer_baseline: Baseline


class ReviewRequest(BaseModel):
    comment: str | None = Field(None, max_length=2000, pattern=r"^[^\x00]*$")


class ReviewResult(BaseModel):
    transaction_id: str
    review_status: Verdict
    reviewed_by: str
    reviewed_at: datetime
    label_published: bool = Field(description="The label is on the training topic (acknowledged).")


def _row(columns: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(columns, values, strict=True))
    row["tx_amount"] = float(row["tx_amount"])
    row["currency"] = str(row["currency"]).strip()
    return row


@router.get("", response_model=TransactionPage)
def list_transactions(
    svc: Svc,
    _p: Analyst,
    status_: Annotated[list[q.Status] | None, Query(alias="status")] = None,
    decision: Annotated[list[q.DecisionName] | None, Query()] = None,
    score_min: Annotated[float | None, Query(ge=0, le=1)] = None,
    score_max: Annotated[float | None, Query(ge=0, le=1)] = None,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=128, pattern=NO_CONTROL)] = None,
    terminal_id: Annotated[str | None, Query(min_length=1, max_length=128, pattern=NO_CONTROL)] = None,
    time_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    time_to: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    sort: q.SortKey = "score",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TransactionPage:
    """Suspicious transactions, filtered, sorted (default: highest score first) and paginated."""
    f = q.TransactionFilter(
        status=tuple(status_ or ()), decision=tuple(decision or ()), score_min=score_min,
        score_max=score_max, customer_id=customer_id, terminal_id=terminal_id,
        time_from=time_from, time_to=time_to,
    )
    page = q.Page(sort=sort, order=order, limit=limit, offset=offset)
    with svc.db() as conn:
        sql_list, args = q.list_query(f, page)
        rows = conn.execute(sql_list, args).fetchall()
        sql_count, cargs = q.count_query(f)
        counted = conn.execute(sql_count, cargs).fetchone()
    total = int(counted[0]) if counted else 0
    return TransactionPage(
        items=[TransactionSummary(**_row(q.LIST_COLUMNS, r)) for r in rows],
        total=min(total, q.COUNT_CAP), total_capped=total > q.COUNT_CAP, limit=limit, offset=offset,
    )


@router.get("/{transaction_id}", response_model=TransactionDetail,
            responses={404: {"description": "No such alert"}})
def get_transaction(transaction_id: IdText, svc: Svc, _p: Analyst) -> TransactionDetail:
    """One alert: the transaction, its features, the reasons, and the customer's usual values."""
    with svc.db() as conn:
        values = conn.execute(q.detail_query(), (transaction_id,)).fetchone()
        if values is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
        row = _row(q.DETAIL_COLUMNS, values)
        row["customer_baseline"] = customer_baseline(
            conn, row["customer_id"], transaction_id, row["tx_datetime"]
        )
    return TransactionDetail(**row)


def _verdict(svc: Services, transaction_id: str, verdict: Verdict, reviewer: str,
             body: ReviewRequest | None) -> ReviewResult:
    reviewed_at = review(svc, transaction_id, verdict, reviewer, body.comment if body else None)
    if reviewed_at is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
    LABELS_PUBLISHED.labels("true" if verdict == "confirmed_fraud" else "false").inc()
    return ReviewResult(transaction_id=transaction_id, review_status=verdict, reviewed_by=reviewer,
                        reviewed_at=reviewed_at, label_published=True)


_REVIEW_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such alert"},
    503: {"description": "The label could not be published; nothing was changed"},
}


@router.post("/{transaction_id}/confirm-fraud", response_model=ReviewResult, responses=_REVIEW_RESPONSES)
def confirm_fraud(transaction_id: IdText, svc: Svc, principal: Analyst,
                  body: ReviewRequest | None = None) -> ReviewResult:
    """Confirm the alert as fraud: the row is updated and an analyst label (is_fraud=true) is
    published on ``training`` for the next model."""
    return _verdict(svc, transaction_id, "confirmed_fraud", principal.name, body)


@router.post("/{transaction_id}/mark-legitimate", response_model=ReviewResult, responses=_REVIEW_RESPONSES)
def mark_legitimate(transaction_id: IdText, svc: Svc, principal: Analyst,
                    body: ReviewRequest | None = None) -> ReviewResult:
    """Mark the alert legitimate: the row is updated and an analyst label (is_fraud=false) is
    published on ``training``."""
    return _verdict(svc, transaction_id, "legitimate", principal.name, body)

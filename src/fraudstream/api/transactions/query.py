"""Turns the queue's filters into one parameterised query.

Only the sort column and direction are composed into the SQL text, and only from the fixed
whitelist below (as :class:`psycopg.sql.Identifier`); every value is a bound parameter. A
``transaction_id`` tie-breaker makes pages stable when scores tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from psycopg import sql

SortKey = Literal["score", "tx_datetime", "detected_at", "tx_amount", "reviewed_at"]
Status = Literal["open", "confirmed_fraud", "legitimate"]
DecisionName = Literal["review", "decline"]

LIST_COLUMNS = (
    "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "currency",
    "score", "decision", "reasons", "review_status", "reviewed_by", "reviewed_at", "detected_at",
)
DETAIL_COLUMNS = (
    *LIST_COLUMNS, "channel", "merchant_category", "country", "lat", "lon", "features",
    "model_version", "rules_version", "review_comment", "source_partition", "source_offset",
)
NULLABLE_SORTS = frozenset({"reviewed_at"})
#: Counting stops here: an exact count of a huge table would cost more than the page itself.
COUNT_CAP = 10_000


@dataclass(frozen=True)
class TransactionFilter:
    status: tuple[Status, ...] = ()
    decision: tuple[DecisionName, ...] = ()
    score_min: float | None = None
    score_max: float | None = None
    customer_id: str | None = None
    terminal_id: str | None = None
    time_from: datetime | None = None  # tx_datetime >= time_from
    time_to: datetime | None = None  # tx_datetime < time_to


@dataclass(frozen=True)
class Page:
    sort: SortKey = "score"
    order: Literal["asc", "desc"] = "desc"
    limit: int = 50
    offset: int = 0


def where_clause(f: TransactionFilter) -> tuple[sql.Composable, list[object]]:
    """``WHERE …`` (or nothing) and its parameters, in order."""
    parts: list[sql.Composable] = []
    params: list[object] = []

    def add(fragment: sql.SQL, value: object) -> None:
        parts.append(fragment)
        params.append(value)

    # One value as "=": only then can the queue index also deliver the sort order.
    if len(f.status) == 1:
        add(sql.SQL("review_status = %s"), f.status[0])
    elif f.status:
        add(sql.SQL("review_status = ANY(%s)"), list(f.status))
    if len(f.decision) == 1:
        add(sql.SQL("decision = %s"), f.decision[0])
    elif f.decision:
        add(sql.SQL("decision = ANY(%s)"), list(f.decision))
    if f.score_min is not None:
        add(sql.SQL("score >= %s"), f.score_min)
    if f.score_max is not None:
        add(sql.SQL("score <= %s"), f.score_max)
    if f.customer_id is not None:
        add(sql.SQL("customer_id = %s"), f.customer_id)
    if f.terminal_id is not None:
        add(sql.SQL("terminal_id = %s"), f.terminal_id)
    if f.time_from is not None:
        add(sql.SQL("tx_datetime >= %s"), f.time_from)
    if f.time_to is not None:
        add(sql.SQL("tx_datetime < %s"), f.time_to)
    if not parts:
        return sql.SQL(""), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), params


def list_query(f: TransactionFilter, page: Page) -> tuple[sql.Composed, list[object]]:
    where, params = where_clause(f)
    direction = sql.SQL("DESC") if page.order == "desc" else sql.SQL("ASC")
    # Only reviewed_at can be null; naming NULLS LAST on the others would stop the indexes
    # (built with the default null order) from delivering the order.
    nulls = sql.SQL(" NULLS LAST") if page.sort in NULLABLE_SORTS else sql.SQL("")
    query = sql.SQL(
        "SELECT {cols} FROM fraudulent_transactions{where}"
        " ORDER BY {sort} {dir}{nulls}, transaction_id {dir} LIMIT %s OFFSET %s"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, LIST_COLUMNS)),
        where=where, sort=sql.Identifier(page.sort), dir=direction, nulls=nulls,
    )
    return query, [*params, page.limit, page.offset]


def count_query(f: TransactionFilter) -> tuple[sql.Composed, list[object]]:
    """How many rows match, counting at most ``COUNT_CAP + 1``."""
    where, params = where_clause(f)
    query = sql.SQL(
        "SELECT count(*) FROM (SELECT 1 FROM fraudulent_transactions{where} LIMIT %s) AS m"
    ).format(where=where)
    return query, [*params, COUNT_CAP + 1]


def detail_query() -> sql.Composed:
    return sql.SQL("SELECT {cols} FROM fraudulent_transactions WHERE transaction_id = %s").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, DETAIL_COLUMNS))
    )

"""The alert queue's query building: filters become bound parameters, never SQL text."""

from __future__ import annotations

from datetime import UTC, datetime

from fraudstream.api.transactions.query import (
    COUNT_CAP,
    Page,
    TransactionFilter,
    count_query,
    list_query,
    where_clause,
)


def text(composed: object) -> str:
    return composed.as_string(None)  # type: ignore[attr-defined]


def test_no_filter_no_where() -> None:
    where, params = where_clause(TransactionFilter())
    assert text(where) == "" and params == []


def test_every_filter_is_a_parameter_in_order() -> None:
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    f = TransactionFilter(status=("open", "legitimate"), decision=("review",), score_min=0.5, score_max=0.9,
                          customer_id="C1'; DROP TABLE x; --", terminal_id="T1", time_from=t0, time_to=t1)
    where, params = where_clause(f)
    sql = text(where)
    assert sql == (" WHERE review_status = ANY(%s) AND decision = %s AND score >= %s AND score <= %s"
                   " AND customer_id = %s AND terminal_id = %s AND tx_datetime >= %s AND tx_datetime < %s")
    assert params == [["open", "legitimate"], "review", 0.5, 0.9, "C1'; DROP TABLE x; --", "T1", t0, t1]
    assert "DROP" not in sql


def test_list_query_sorts_by_whitelisted_identifier_with_tiebreak() -> None:
    query, params = list_query(TransactionFilter(customer_id="C"), Page("tx_amount", "asc", 20, 40))
    sql = text(query)
    assert 'ORDER BY "tx_amount" ASC, transaction_id ASC LIMIT %s OFFSET %s' in sql
    reviewed, _ = list_query(TransactionFilter(), Page("reviewed_at", "desc"))
    assert 'ORDER BY "reviewed_at" DESC NULLS LAST, transaction_id DESC' in text(reviewed)
    assert sql.startswith('SELECT "transaction_id", "tx_datetime"')
    assert params == ["C", 20, 40]


def test_count_is_capped() -> None:
    query, params = count_query(TransactionFilter(score_min=0.1))
    assert "LIMIT %s" in text(query) and params == [0.1, COUNT_CAP + 1]

"""Turning rule results and model probabilities into one score, a decision and reasons.

Score. With a model, the final score is the *noisy-OR* of the two sources::

    score = 1 - (1 - model_p) * (1 - rules_score)

read as "the probability that at least one of two independent detectors is right". It stays
in [0, 1], equals either input when the other is 0, never drops below either input (a rule can
only raise the model's opinion, and vice versa), and needs no weight to tune. Without a model,
or for rows where the model produced NaN, the score is the rules score.

Decision. ``decline`` if ``score >= thresholds.decline``, else ``review`` if
``score >= thresholds.review``, else ``approve``; then any decision forced by a rule replaces it
(the rules engine already kept the strongest one: decline > review > approve). The score is left
as computed, so a forced decision remains visible as such.

Reasons. Per row: ``rule:<id>`` for each fired rule, in rule-set order, then, when a
contribution matrix is given (e.g. SHAP-like values, N x n_features), up to ``top_k`` of the
largest *positive* contributions, largest first, as ``model:<feature>=+0.31``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from fraudstream.rules.engine import RuleResult
from fraudstream.rules.model import APPROVE, DECISION_CODES, DECISION_NAMES, DECLINE, NO_DECISION, REVIEW

__all__ = [
    "APPROVE",
    "DECISION_CODES",
    "DECISION_NAMES",
    "DECLINE",
    "REVIEW",
    "Combined",
    "Thresholds",
    "combine",
    "combine_scores",
    "decide",
    "decision_names",
    "model_reasons",
]

_NAMES = np.array(DECISION_NAMES)


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs: ``review <= decline``, both in [0, 1] (validated like settings)."""

    review: float = Field(default=0.5, ge=0.0, le=1.0)
    decline: float = Field(default=0.8, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.review > self.decline:
            raise ValueError(f"review threshold {self.review} is above decline threshold {self.decline}")
        return self


class Combined(NamedTuple):
    """What :func:`combine` returns (a tuple, so ``score, decision, reasons = combine(...)``)."""

    score: npt.NDArray[np.float64]  # (N,) in [0, 1]
    decision: npt.NDArray[np.int8]  # (N,) codes, see DECISION_NAMES
    reasons: list[list[str]]  # per row

    def decision_names(self) -> npt.NDArray[np.str_]:
        return decision_names(self.decision)


def decision_names(codes: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """Decision codes (0, 1, 2) to their wire names ("approve", "review", "decline")."""
    return _NAMES[np.asarray(codes, dtype=np.intp)]


def combine_scores(rules_score: npt.ArrayLike, model_scores: npt.ArrayLike | None) -> npt.NDArray[np.float64]:
    """The final score: noisy-OR of model and rules, or the rules score alone (see module doc)."""
    rules = np.clip(np.asarray(rules_score, dtype=np.float64), 0.0, 1.0)
    if model_scores is None:
        return rules
    model = np.asarray(model_scores, dtype=np.float64)
    if model.shape != rules.shape:
        raise ValueError(f"model scores have shape {model.shape}, rules scores {rules.shape}")
    combined = 1.0 - (1.0 - np.clip(model, 0.0, 1.0)) * (1.0 - rules)
    return np.where(np.isnan(model), rules, combined)


def decide(
    score: npt.ArrayLike, thresholds: Thresholds, forced: npt.ArrayLike | None = None
) -> npt.NDArray[np.int8]:
    """Decision codes from thresholds, then replaced by forced codes where those are >= 0."""
    s = np.asarray(score, dtype=np.float64)
    codes = np.full(s.shape, APPROVE, dtype=np.int8)
    codes[s >= thresholds.review] = REVIEW
    codes[s >= thresholds.decline] = DECLINE
    if forced is not None:
        f = np.asarray(forced, dtype=np.int8)
        codes = np.where(f > NO_DECISION, f, codes).astype(np.int8, copy=False)
    return codes


def model_reasons(
    contributions: npt.ArrayLike,
    feature_names: Sequence[str],
    top_k: int = 3,
    rows: npt.ArrayLike | None = None,
) -> dict[int, list[str]]:
    """``{row: ["model:<feature>=+0.31", ...]}``: the ``top_k`` largest positive contributions.

    Vectorised: one ``argpartition`` over the matrix picks each row's candidates, a sort of
    those ``top_k`` columns orders them; Python only formats the strings that are kept. NaN
    contributions are ignored. Rows with no positive contribution are absent. ``rows`` (a bool
    mask or row indexes) limits the work to the rows that need explaining; keys stay row
    numbers of the full matrix.
    """
    c = np.asarray(contributions, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != len(feature_names):
        raise ValueError(f"contributions shape {c.shape} does not match {len(feature_names)} feature names")
    index: npt.NDArray[np.intp] | None = None
    if rows is not None:
        selector = np.asarray(rows)
        index = np.flatnonzero(selector) if selector.dtype == np.bool_ else selector.astype(np.intp)
        c = c[index]
    n, n_features = c.shape
    k = min(top_k, n_features)
    if n == 0 or k <= 0:
        return {}
    c = np.where(np.isnan(c), -np.inf, c)
    if k < n_features:
        cols = np.argpartition(-c, k - 1, axis=1)[:, :k]
    else:
        cols = np.broadcast_to(np.arange(n_features), (n, n_features))
    vals = np.take_along_axis(c, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    cols = np.take_along_axis(cols, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    hit_rows, slots = np.nonzero(vals > 0)  # row-major: per row, largest first
    names = list(feature_names)
    keys = hit_rows if index is None else index[hit_rows]
    out: dict[int, list[str]] = {}
    for row, col, val in zip(
        keys.tolist(), cols[hit_rows, slots].tolist(), vals[hit_rows, slots].tolist(), strict=True
    ):
        out.setdefault(row, []).append(f"model:{names[col]}={val:+.2f}")
    return out


def combine(
    rule_result: RuleResult | None,
    model_scores: npt.ArrayLike | None,
    thresholds: Thresholds | None = None,
    *,
    contributions: npt.ArrayLike | None = None,
    feature_names: Sequence[str] | None = None,
    top_k: int = 3,
    explain: npt.ArrayLike | None = None,
    n: int | None = None,
) -> Combined:
    """Final score, decision code and reasons for each row of a batch (see the module doc).

    ``rule_result`` may be None (no rule set in force); then ``model_scores`` or ``n`` gives
    the batch size. ``contributions`` (N x n_features) needs ``feature_names``; ``explain``
    (bool mask) limits model reasons to some rows, e.g. ``decision != APPROVE``, since
    formatting strings is the only per-row cost here.
    """
    thresholds = thresholds or Thresholds()
    if rule_result is not None:
        size = len(rule_result)
        rules_score = rule_result.score
        forced: npt.NDArray[np.int8] | None = rule_result.forced
    else:
        size = len(np.asarray(model_scores)) if model_scores is not None else (n or 0)
        rules_score = np.zeros(size, dtype=np.float64)
        forced = None
    score = combine_scores(rules_score, model_scores)
    decision = decide(score, thresholds, forced)

    reasons: list[list[str]] = [[] for _ in range(size)]
    if rule_result is not None:
        for row, ids in rule_result.fired_ids().items():
            reasons[row].extend(f"rule:{rid}" for rid in ids)
    if contributions is not None:
        if feature_names is None:
            raise ValueError("contributions need feature_names")
        if np.shape(contributions)[0] != size:
            raise ValueError(f"contributions have {np.shape(contributions)[0]} rows, batch has {size}")
        for row, texts in model_reasons(contributions, feature_names, top_k, explain).items():
            reasons[row].extend(texts)
    return Combined(score, decision, reasons)

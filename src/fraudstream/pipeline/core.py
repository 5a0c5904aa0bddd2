"""The pure core of the detector: ``process(batch, state) -> decisions``.

No I/O, no clock: given the same batch and the same state it returns the same decisions,
which is what makes replays after a crash produce exactly the decisions of the first run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fraudstream.contracts.batch import TxBatch
from fraudstream.features.customer import CustomerState
from fraudstream.features.definitions import compute_features
from fraudstream.features.terminal import TerminalState
from fraudstream.rules.engine import CompiledRuleSet, evaluate
from fraudstream.scoring.combine import Thresholds, combine


class Model(Protocol):
    """A scoring model: fraud probability and per-feature contributions for a batch."""

    version: str

    def predict(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
        """(probabilities (N,), contributions (N, F) or None, the F feature names)."""
        ...


@dataclass
class Decisions:
    score: np.ndarray  # float64 (N,)
    decision: np.ndarray  # int8 codes (N,): 0 approve, 1 review, 2 decline
    reasons: list[list[str]]
    features: dict[str, np.ndarray]
    rules_version: str | None
    model_version: str | None


def process(
    batch: TxBatch,
    customers: CustomerState,
    terminals: TerminalState,
    rules: tuple[int, CompiledRuleSet] | None,
    model: Model | None,
    thresholds: Thresholds,
) -> Decisions:
    """Features (updating the customer state), rules, model, and the combined decision."""
    features = compute_features(batch, customers, terminals)
    n = len(batch)
    rule_result = evaluate(rules[1], features, n) if rules is not None else None
    probs = contribs = None
    names: list[str] = []
    if model is not None:
        probs, contribs, names = model.predict(features)
    combined = combine(
        rule_result, probs, thresholds, contributions=contribs, feature_names=names or None, n=n
    )
    return Decisions(
        score=combined.score,
        decision=combined.decision,
        reasons=combined.reasons,
        features=features,
        rules_version=str(rules[0]) if rules is not None else None,
        model_version=str(model.version) if model is not None else None,
    )

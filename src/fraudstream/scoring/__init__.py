"""Final scores and decisions: rules and model combined (see :mod:`.combine`)."""

from fraudstream.scoring.combine import (
    Combined,
    Thresholds,
    combine,
    combine_scores,
    decide,
    decision_names,
    model_reasons,
)

__all__ = [
    "Combined",
    "Thresholds",
    "combine",
    "combine_scores",
    "decide",
    "decision_names",
    "model_reasons",
]

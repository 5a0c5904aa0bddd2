"""Streaming feature computation: exact, vectorised, stateful (per-partition customers, global
terminals), matching the Fraud Detection Handbook's definitions."""

from fraudstream.features.customer import CustomerState
from fraudstream.features.definitions import (
    FEATURE_NAMES,
    HANDBOOK_FEATURES,
    REALTIME_FEATURES,
    compute_features,
    feature_matrix,
)
from fraudstream.features.terminal import TerminalState
from fraudstream.features.window_store import WindowStore

__all__ = [
    "FEATURE_NAMES",
    "HANDBOOK_FEATURES",
    "REALTIME_FEATURES",
    "CustomerState",
    "TerminalState",
    "WindowStore",
    "compute_features",
    "feature_matrix",
]

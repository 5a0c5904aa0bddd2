"""The rule-set document (what analysts write) and the names shared by rules and scoring.

A rule set is plain data (YAML or JSON) validated by pydantic here; turning conditions into
code is :mod:`fraudstream.rules.expr`'s job and checking feature names against the detector's
list happens when a rule set is compiled (:func:`fraudstream.rules.engine.compile_ruleset`),
because the allowed names depend on the feature code that will feed the rules.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fraudstream.features.definitions import FEATURE_NAMES

__all__ = [
    "APPROVE",
    "DECISION_CODES",
    "DECISION_NAMES",
    "DECLINE",
    "KNOWN_FEATURES",
    "NO_DECISION",
    "REVIEW",
    "Action",
    "DecisionName",
    "Rule",
    "RuleSet",
    "RuleSetError",
]

#: The features the detector computes (one float64 array per name for a batch), from the
#: features package: one list, so a rule set that validates here also compiles in the worker.
KNOWN_FEATURES: tuple[str, ...] = tuple(FEATURE_NAMES)

DecisionName = Literal["approve", "review", "decline"]

#: Decision codes, ordered by strength so that "strongest wins" is a plain ``max``.
NO_DECISION = -1
APPROVE = 0
REVIEW = 1
DECLINE = 2
#: ``DECISION_NAMES[code]`` is the wire name of a decision code (see ``contracts.Decision``).
DECISION_NAMES: tuple[str, ...] = ("approve", "review", "decline")
DECISION_CODES: dict[str, int] = {name: code for code, name in enumerate(DECISION_NAMES)}

_RULE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$"
MAX_CONDITION_LENGTH = 2000


class RuleSetError(ValueError):
    """A rule set that cannot be used (bad document, bad condition, unknown feature)."""


class Action(BaseModel):
    """What a rule does when its condition holds: add to the score, force a decision, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="Added to the rules score (the sum is clipped to [0, 1]); negative values "
        "let an allow-listing rule lower the score.",
    )
    decision: DecisionName | None = Field(
        default=None, description="Forced decision; among fired rules decline > review > approve."
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> Action:
        if self.score is None and self.decision is None:
            raise ValueError("an action needs a 'score', a 'decision' or both")
        return self

    @property
    def decision_code(self) -> int:
        return NO_DECISION if self.decision is None else DECISION_CODES[self.decision]


class Rule(BaseModel):
    """One rule: ``condition`` is an expression over feature names (see :mod:`.expr`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_RULE_ID_PATTERN, description="Shown in reasons as 'rule:<id>'.")
    description: str = ""
    condition: str = Field(min_length=1, max_length=MAX_CONDITION_LENGTH)
    action: Action
    enabled: bool = True

    @field_validator("condition")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("condition is blank")
        return value


class RuleSet(BaseModel):
    """A named, ordered list of rules; the unit that is stored, versioned and activated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    rules: tuple[Rule, ...] = ()

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        seen: set[str] = set()
        dupes: set[str] = set()
        for rule in rules:
            (dupes if rule.id in seen else seen).add(rule.id)
        if dupes:
            raise ValueError(f"duplicate rule ids: {', '.join(sorted(dupes))}")
        return rules

    def body(self) -> dict[str, Any]:
        """The JSON document stored in ``rule_sets.body`` (defaults included, so it is explicit)."""
        return self.model_dump(mode="json")

    def checksum(self) -> str:
        """sha256 of the canonical JSON body: equal rule sets have equal checksums."""
        canonical = json.dumps(self.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

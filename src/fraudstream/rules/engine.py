"""Compiling rule sets and evaluating them over a batch of feature arrays.

The detector works on micro-batches, so evaluation is column-wise: each rule's condition runs
once over the whole batch (see :mod:`fraudstream.rules.expr`), producing one row of the
``fired`` matrix (rules x N). Scores and forced decisions are then reductions over that matrix.
Nothing per transaction happens in Python except listing fired rule ids, and only for the
transactions that fired something.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import ValidationError

from fraudstream.rules.expr import CompiledCondition, compile_condition
from fraudstream.rules.model import KNOWN_FEATURES, NO_DECISION, RuleSet, RuleSetError

__all__ = [
    "DEFAULT_RULES_RESOURCE",
    "CompiledRule",
    "CompiledRuleSet",
    "RuleResult",
    "compile_ruleset",
    "default_ruleset",
    "evaluate",
    "parse_ruleset",
    "read_ruleset",
]

DEFAULT_RULES_RESOURCE = "default_rules.yaml"


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML where only true/false are booleans (YAML 1.2), not yes/no/on/off.

    Rule ids such as ``OFF`` or ``NO`` would otherwise silently become booleans.
    """


_BOOL_TAG = "tag:yaml.org,2002:bool"
_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class CompiledRule:
    """An enabled rule with its condition compiled."""

    id: str
    score: float
    forced: int  # decision code, NO_DECISION when the rule forces nothing
    condition: CompiledCondition


@dataclass(frozen=True)
class CompiledRuleSet:
    """A validated rule set ready to evaluate; disabled rules are left out."""

    spec: RuleSet
    rules: tuple[CompiledRule, ...]
    rule_ids: tuple[str, ...] = field(init=False)
    scores: npt.NDArray[np.float64] = field(init=False, repr=False)
    forced_codes: npt.NDArray[np.int8] = field(init=False, repr=False)
    features: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: derived fields are computed once here
        set_(self, "rule_ids", tuple(r.id for r in self.rules))
        set_(self, "scores", np.array([r.score for r in self.rules], dtype=np.float64))
        set_(self, "forced_codes", np.array([r.forced for r in self.rules], dtype=np.int8))
        set_(self, "features", frozenset().union(*(r.condition.features for r in self.rules)))

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class RuleResult:
    """The outcome of a rule set over a batch of N transactions.

    ``score``: float64 (N,), sum of the fired rules' scores clipped to [0, 1].
    ``forced``: int8 (N,), the strongest forced decision code, -1 when none.
    ``fired``: bool (rules, N), row ``i`` is rule ``rule_ids[i]``.
    """

    score: npt.NDArray[np.float64]
    forced: npt.NDArray[np.int8]
    fired: npt.NDArray[np.bool_]
    rule_ids: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def fired_ids(self) -> dict[int, list[str]]:
        """``{row: [rule ids, in rule order]}`` for the rows where at least one rule fired.

        Only ``np.nonzero`` of the matrix is walked, so the cost follows the number of firings,
        not the batch size.
        """
        rows, rules = np.nonzero(self.fired.T)  # row-major: grouped by row, rules in order
        out: dict[int, list[str]] = {}
        ids = self.rule_ids
        for row, rule in zip(rows.tolist(), rules.tolist(), strict=True):
            bucket = out.get(row)
            if bucket is None:
                out[row] = [ids[rule]]
            else:
                bucket.append(ids[rule])
        return out

    def fired_ids_for(self, row: int) -> list[str]:
        """The rule ids fired for one row (for a single lookup; use :meth:`fired_ids` in bulk)."""
        return [self.rule_ids[i] for i in np.flatnonzero(self.fired[:, row])]


def _allowed(features: Collection[str] | None) -> frozenset[str]:
    return frozenset(KNOWN_FEATURES if features is None else features)


def compile_ruleset(ruleset: RuleSet, features: Collection[str] | None = None) -> CompiledRuleSet:
    """Compile every enabled rule; unknown feature names or bad syntax raise :class:`RuleSetError`.

    ``features`` is the allow-list of names (default :data:`KNOWN_FEATURES`); the features
    package passes the names it really computes so rules cannot refer to anything else.
    """
    allowed = _allowed(features)
    compiled = []
    for rule in ruleset.rules:
        # Disabled rules are still checked: a rule set that would break when a rule is switched
        # on should not be accepted.
        condition = compile_condition(rule.condition, allowed, rule.id)
        if rule.enabled:
            score = rule.action.score or 0.0
            compiled.append(CompiledRule(rule.id, score, rule.action.decision_code, condition))
    return CompiledRuleSet(ruleset, tuple(compiled))


def parse_ruleset(
    document: str | bytes | Mapping[str, Any] | RuleSet, features: Collection[str] | None = None
) -> RuleSet:
    """Validate a rule-set document (YAML/JSON text, a mapping, or a model) and its conditions.

    Returns the validated :class:`RuleSet`; every condition has been compiled against
    ``features`` so an invalid rule set never gets stored.
    """
    if isinstance(document, RuleSet):
        ruleset = document
    else:
        if isinstance(document, str | bytes):
            try:
                data = yaml.load(document, Loader=_YamlLoader)  # a SafeLoader; YAML reads JSON too
            except yaml.YAMLError as exc:
                raise RuleSetError(f"not valid YAML/JSON: {exc}") from None
        else:
            data = document
        if not isinstance(data, Mapping):
            raise RuleSetError("a rule set must be a mapping with 'name' and 'rules'")
        try:
            ruleset = RuleSet.model_validate(dict(data))
        except ValidationError as exc:
            raise RuleSetError(_format_validation_error(exc, data)) from None
    compile_ruleset(ruleset, features)
    return ruleset


def _format_validation_error(exc: ValidationError, data: Mapping[str, Any]) -> str:
    """pydantic's errors, with rule ids instead of list indexes where possible."""
    rules = data.get("rules")
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(rules, list):
            item = rules[loc[1]] if loc[1] < len(rules) else None
            rid = item.get("id") if isinstance(item, Mapping) else None
            loc[1] = f"{loc[1]} ({rid})" if rid else loc[1]
        lines.append(f"{'.'.join(map(str, loc)) or '<root>'}: {err['msg']}")
    return "invalid rule set: " + "; ".join(lines)


def read_ruleset(path: str | Path, features: Collection[str] | None = None) -> RuleSet:
    """Read and validate a ``.yaml``/``.yml``/``.json`` rule-set file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleSetError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return parse_ruleset(json.loads(text), features)
        except json.JSONDecodeError as exc:
            raise RuleSetError(f"{path.name}: not valid JSON: {exc}") from None
    return parse_ruleset(text, features)


def default_ruleset(features: Collection[str] | None = None) -> RuleSet:
    """The shipped rule set (``default_rules.yaml`` in this package)."""
    text = resources.files("fraudstream.rules").joinpath(DEFAULT_RULES_RESOURCE).read_text("utf-8")
    return parse_ruleset(text, features)


def _batch_size(arrays: Mapping[str, np.ndarray]) -> int:
    shapes = {name: a.shape for name, a in arrays.items()}
    lengths = {shape[0] for shape in shapes.values() if len(shape) == 1}
    if len(lengths) != 1 or any(len(shape) != 1 for shape in shapes.values()):
        raise ValueError(f"feature arrays must be 1-D and of one length, got shapes {shapes}")
    return lengths.pop()


def evaluate(
    ruleset: CompiledRuleSet | RuleSet, features: Mapping[str, npt.ArrayLike], n: int | None = None
) -> RuleResult:
    """Run every rule over the batch described by ``features`` (name -> array of length N).

    A plain :class:`RuleSet` is compiled first against the names present in ``features``.
    ``n`` is only needed when the rule set uses no feature and ``features`` is empty.
    """
    if isinstance(ruleset, RuleSet):
        ruleset = compile_ruleset(ruleset, features.keys())
    missing = ruleset.features - features.keys()
    if missing:
        raise KeyError(f"rule set {ruleset.name!r} needs features not in the batch: {sorted(missing)}")
    arrays = {name: np.asarray(features[name], dtype=np.float64) for name in ruleset.features}
    if arrays:
        size = _batch_size(arrays)
        if n is not None and n != size:
            raise ValueError(f"n={n} but the feature arrays have length {size}")
    elif n is not None:
        size = n
    else:  # a rule set that reads no feature: take the batch size from whatever was passed
        others = {name: np.asarray(v) for name, v in features.items()}
        size = _batch_size(others) if others else 0

    n_rules = len(ruleset.rules)
    fired = np.empty((n_rules, size), dtype=np.bool_)
    for i, rule in enumerate(ruleset.rules):
        fired[i] = rule.condition(arrays, size)
    if n_rules:
        score = np.clip(ruleset.scores @ fired, 0.0, 1.0)
        forced_matrix = np.where(fired, ruleset.forced_codes[:, None], np.int8(NO_DECISION))
        forced = forced_matrix.max(axis=0).astype(np.int8, copy=False)
    else:
        score = np.zeros(size, dtype=np.float64)
        forced = np.full(size, NO_DECISION, dtype=np.int8)
    return RuleResult(score=score, forced=forced, fired=fired, rule_ids=ruleset.rule_ids)

"""Analyst-written fraud rules: a safe expression language, evaluated column-wise on batches.

* :mod:`.model` - the rule-set document (pydantic), decision codes, :data:`KNOWN_FEATURES`;
* :mod:`.expr` - conditions parsed with :mod:`ast` and compiled to NumPy closures (no ``eval``);
* :mod:`.engine` - compiling rule sets, :func:`evaluate` over ``{feature: array}``;
* :mod:`.store` - the versioned registry in PostgreSQL (one active version);
* :mod:`.watcher` - :class:`RuleWatcher`, hot reload of the active version in the detector;
* :mod:`.command` - the ``fraudstream rules`` CLI (imported by the CLI only).
"""

from fraudstream.rules.engine import (
    CompiledRule,
    CompiledRuleSet,
    RuleResult,
    compile_ruleset,
    default_ruleset,
    evaluate,
    parse_ruleset,
    read_ruleset,
)
from fraudstream.rules.expr import ConditionError, compile_condition
from fraudstream.rules.model import (
    APPROVE,
    DECISION_CODES,
    DECISION_NAMES,
    DECLINE,
    KNOWN_FEATURES,
    NO_DECISION,
    REVIEW,
    Action,
    Rule,
    RuleSet,
    RuleSetError,
)
from fraudstream.rules.watcher import RuleWatcher

__all__ = [
    "APPROVE",
    "DECISION_CODES",
    "DECISION_NAMES",
    "DECLINE",
    "KNOWN_FEATURES",
    "NO_DECISION",
    "REVIEW",
    "Action",
    "CompiledRule",
    "CompiledRuleSet",
    "ConditionError",
    "Rule",
    "RuleResult",
    "RuleSet",
    "RuleSetError",
    "RuleWatcher",
    "compile_condition",
    "compile_ruleset",
    "default_ruleset",
    "evaluate",
    "parse_ruleset",
    "read_ruleset",
]

"""The ``rules`` sub-commands, with the database calls replaced (the store has its own tests)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from fraudstream.rules import RuleSetError
from fraudstream.rules import command as command_module
from fraudstream.rules.command import rules_app
from fraudstream.rules.store import RuleSetInfo

runner = CliRunner()

GOOD = """
name: cli-test
rules:
  - id: BIG
    condition: TX_AMOUNT > 100
    action: {score: 0.5}
  - id: OFF
    enabled: false
    condition: TX_DURING_NIGHT == 1
    action: {decision: review}
"""


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    return path


@pytest.fixture
def fake_db(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    calls: dict[str, Any] = {}

    @contextmanager
    def connect() -> Any:
        calls["connected"] = True
        yield "conn"

    monkeypatch.setattr(command_module, "_connect", connect)
    return calls


def test_validate_ok(good_file: Path) -> None:
    result = runner.invoke(rules_app, ["validate", str(good_file)])
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "valid" in out and "'cli-test'" in out and "1 active rule(s), 1 disabled" in out


def test_validate_reports_rule_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("TX_AMOUNT > 100", "TX_AMOUNT > 100 and os.system[1]"))
    result = runner.invoke(rules_app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "rule 'BIG', column 21: subscripts not allowed" in flat(result.output)


def test_validate_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(rules_app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "cannot read" in flat(result.output)


@pytest.mark.parametrize(("flag", "expected"), [([], True), (["--no-activate"], False)])
def test_load(
    good_file: Path, fake_db: dict[str, Any], monkeypatch: pytest.MonkeyPatch, flag: list[str], expected: bool
) -> None:
    def load_ruleset(conn: Any, ruleset: Any, created_by: str | None = None, activate: bool = True) -> int:
        fake_db.update(conn=conn, name=ruleset.name, created_by=created_by, activate=activate)
        return 7

    monkeypatch.setattr(command_module.store, "load_ruleset", load_ruleset)
    result = runner.invoke(rules_app, ["load", str(good_file), "--created-by", "alice", *flag])
    assert result.exit_code == 0, result.output
    assert fake_db == {
        "connected": True,
        "conn": "conn",
        "name": "cli-test",
        "created_by": "alice",
        "activate": expected,
    }
    assert "loaded as version 7" in flat(result.output)


def test_load_refuses_invalid_file_without_connecting(tmp_path: Path, fake_db: dict[str, Any]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "rules": [{"id": "A", "condition": "NOPE > 1", "action": {"score": 1}}]}')
    result = runner.invoke(rules_app, ["load", str(bad)])
    assert result.exit_code == 1
    assert "unknown feature 'NOPE'" in flat(result.output)
    assert "connected" not in fake_db


def test_list(fake_db: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    infos = [
        RuleSetInfo(2, "[bold]two", "b" * 64, True, now, "alice", 3),
        RuleSetInfo(1, "one", "a" * 64, False, now, None, 1),
    ]
    monkeypatch.setattr(command_module.store, "list_rulesets", lambda conn: infos)
    result = runner.invoke(rules_app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[bold]two" in result.output  # names are shown literally, not as markup
    assert "bbbbbbbbbbbb" in result.output and "alice" in result.output


def test_activate(fake_db: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(command_module.store, "activate", lambda conn, version: seen.append(version))
    result = runner.invoke(rules_app, ["activate", "3"])
    assert result.exit_code == 0 and seen == [3]

    def missing(conn: Any, version: int) -> None:
        raise RuleSetError(f"no rule set version {version}")

    monkeypatch.setattr(command_module.store, "activate", missing)
    result = runner.invoke(rules_app, ["activate", "99"])
    assert result.exit_code == 1 and "no rule set version 99" in flat(result.output)


def test_database_errors_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> Any:
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(command_module, "_connect", refuse)
    result = runner.invoke(rules_app, ["list"])
    assert result.exit_code == 1 and "database: connection refused" in flat(result.output)

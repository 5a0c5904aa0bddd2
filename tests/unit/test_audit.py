"""The dependency audit's verdicts: clean only when every pin was really checked."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit", ROOT / "scripts" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


audit = _audit()


def test_verdicts_of_pip_audit_reports() -> None:
    ok = {"name": "a", "version": "1", "vulns": []}
    bad = {"name": "b", "version": "2", "vulns": [{"id": "PYSEC-1", "fix_versions": ["2.1"]}]}
    skipped = {"name": "c", "skip_reason": "Dependency not found on PyPI"}
    assert audit.verdict({"dependencies": [ok]})[0] == audit.CLEAN
    status, text = audit.verdict({"dependencies": [ok, bad]})
    assert status == audit.VULNERABLE and "PYSEC-1 (fixed in 2.1)" in text
    # pip-audit itself says "No known vulnerabilities found" for this one: not a pass here.
    assert audit.verdict({"dependencies": [ok, skipped]})[0] == audit.NOT_AUDITED
    assert audit.verdict({"dependencies": []})[0] == audit.NOT_AUDITED


def test_advisory_database_ranges(tmp_path: Path) -> None:
    (tmp_path / "requests").mkdir()
    (tmp_path / "requests" / "PYSEC-2023-74.yaml").write_text(
        "id: PYSEC-2023-74\naffected:\n- package: {name: requests, ecosystem: PyPI}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: 2.3.0\n    - fixed: 2.31.0\n"
    )
    lock = tmp_path / "requirements.lock"
    for version, affected in [("2.30.0", True), ("2.3.0", True), ("2.31.0", False), ("2.2.1", False)]:
        lock.write_text(f"Requests=={version}\nidna==3.20\n")
        report = audit.advisory_db_report(lock, tmp_path)
        status, text = audit.verdict(report)
        assert (status == audit.VULNERABLE) is affected, version
        if affected:
            assert "requests" in text and "fixed in 2.31.0" in text


def test_lock_pins_pip_audit() -> None:
    assert str(audit.pins(ROOT / "requirements.lock")["pip-audit"]) == "2.10.1"

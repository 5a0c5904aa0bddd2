"""Known-vulnerability audit of every pinned dependency (``requirements.lock``).

    .venv/bin/python scripts/audit.py                      # pip-audit, PyPI's advisory feed
    .venv/bin/python scripts/audit.py --advisory-db DIR    # offline: a PyPA advisory-database
                                                           # checkout (its vulns/ folder)

Exit status: 0 every pin audited and none affected; 1 vulnerable pins (listed with their
fixed versions); 2 not audited. pip-audit reports "No known vulnerabilities found" even when
its feed answered for none of the packages (it only skips them), so a skipped package makes
this audit fail instead of passing silently.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
CLEAN, VULNERABLE, NOT_AUDITED = 0, 1, 2


def verdict(report: dict[str, Any]) -> tuple[int, str]:
    """Exit status and summary of a ``pip-audit -f json`` report."""
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    lines = [
        f"{d['name']} {d['version']}: " + ", ".join(
            f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['-'])})" for v in d["vulns"]
        )
        for d in vulnerable
    ]
    if vulnerable:
        return VULNERABLE, "\n".join([f"{len(vulnerable)} vulnerable pin(s):", *lines])
    if not deps or skipped:
        reason = skipped[0]["skip_reason"] if skipped else "no dependencies in the report"
        return NOT_AUDITED, (f"NOT AUDITED: {len(skipped)} of {len(deps)} pins could not be "
                             f"checked (first: {reason})")
    return CLEAN, f"{len(deps)} pins audited, no known vulnerabilities"


def run_pip_audit(lock: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        subprocess.run(
            [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip",
             "--progress-spinner", "off", "-f", "json", "-o", str(out)],
            check=False,
        )
        if not out.exists():
            return {"dependencies": []}
        return json.loads(out.read_text())


def pins(lock: Path) -> dict[str, Version]:
    found = {}
    for line in lock.read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            found[canonicalize_name(name)] = Version(version)
    return found


def _affects(affected: dict[str, Any], version: Version) -> bool:
    listed = {str(v) for v in affected.get("versions", [])}
    if str(version) in listed:
        return True
    for rng in affected.get("ranges", []):
        if rng.get("type") != "ECOSYSTEM":
            continue
        inside = False
        for event in rng.get("events", []):
            ((kind, at),) = event.items()
            try:
                bound = Version(str(at))
            except InvalidVersion:
                continue
            if kind == "introduced" and version >= bound:
                inside = True
            elif kind in ("fixed", "last_affected") and (
                version >= bound if kind == "fixed" else version > bound
            ):
                inside = False
        if inside:
            return True
    return False


def advisory_db_report(lock: Path, vulns_dir: Path) -> dict[str, Any]:
    """The same JSON shape as pip-audit's, from OSV files of the PyPA advisory database."""
    deps = []
    for name, version in sorted(pins(lock).items()):
        found = []
        for path in sorted((vulns_dir / name).glob("*.yaml")):
            adv = yaml.safe_load(path.read_text())
            for affected in adv.get("affected", []):
                if canonicalize_name(affected["package"]["name"]) == name and _affects(affected, version):
                    fixed = [str(e["fixed"]) for r in affected.get("ranges", [])
                             for e in r.get("events", []) if "fixed" in e and r.get("type") == "ECOSYSTEM"]
                    found.append({"id": adv["id"], "fix_versions": fixed})
        deps.append({"name": name, "version": str(version), "vulns": found})
    return {"dependencies": deps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--advisory-db", type=Path, help="a PyPA advisory-database checkout")
    args = parser.parse_args()
    if args.advisory_db:
        vulns = args.advisory_db / "vulns" if (args.advisory_db / "vulns").is_dir() else args.advisory_db
        report = advisory_db_report(args.lock, vulns)
    else:
        report = run_pip_audit(args.lock)
    status, summary = verdict(report)
    print(summary)
    return status


if __name__ == "__main__":
    sys.exit(main())

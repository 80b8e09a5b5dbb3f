"""`make infra`'s verdict on checkov's JSON report: fail on any failed check or parsing error.

checkov exits 0 when a file cannot be parsed (pycep-parser 0.5.1 refuses newer Bicep syntax) and then scans
nothing in it, so its exit code alone would let an unscanned file through. Usage:
    python -m tests.unit.infra.checkov_gate .local/checkov.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def problems(report: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
    """What makes the scan fail: failed checks (id, resource, file) and parsing errors (file)."""
    reports = report if isinstance(report, list) else [report]
    found: list[str] = []
    for one in reports:
        if one.get("check_type") not in (None, "bicep"):
            continue
        results = one.get("results", {})
        found += [
            f"failed {check['check_id']} on {check['resource']} ({check['file_path']})"
            for check in results.get("failed_checks", [])
        ]
        found += [f"not parsed (so not scanned): {path}" for path in results.get("parsing_errors", [])]
        if one.get("summary", {}).get("parsing_errors") and not results.get("parsing_errors"):
            found.append(f"{one['summary']['parsing_errors']} file(s) not parsed")
    if not any(one.get("check_type") in (None, "bicep") and one.get("summary") for one in reports):
        found.append("the report has no bicep summary: checkov scanned nothing")
    return found


def summary(report: dict[str, Any] | list[dict[str, Any]]) -> str:
    """One line of figures."""
    reports = report if isinstance(report, list) else [report]
    figures: dict[str, Any] = next((one["summary"] for one in reports if one.get("summary")), {})
    keys = ("passed", "failed", "skipped", "parsing_errors", "resource_count", "checkov_version")
    return "checkov bicep: " + ", ".join(f"{key} {figures.get(key)}" for key in keys)


def main(argv: list[str]) -> int:
    """Print the figures and every problem; exit 1 when there is one."""
    report = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    print(summary(report))
    found = problems(report)
    for problem in found:
        print(f"  {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

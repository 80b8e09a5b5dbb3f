"""The checkov gate of `make checkov`: a failed check or an unparsed file fails, a clean scan passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.infra.checkov_gate import main, problems, summary


def report(
    *, failed: list[dict[str, str]] | None = None, unparsed: list[str] | None = None
) -> dict[str, Any]:
    return {
        "check_type": "bicep",
        "results": {"passed_checks": [], "failed_checks": failed or [], "parsing_errors": unparsed or []},
        "summary": {
            "passed": 28,
            "failed": len(failed or []),
            "skipped": 17,
            "parsing_errors": len(unparsed or []),
            "resource_count": 62,
            "checkov_version": "3.3.30",
        },
    }


def test_a_clean_scan_passes_and_prints_its_figures(tmp_path: Path) -> None:
    """0 failed, 0 parsing errors: exit 0, the figures on one line."""
    path = tmp_path / "checkov.json"
    path.write_text(json.dumps(report()))
    assert problems(report()) == []
    assert main(["gate", str(path)]) == 0
    assert summary(report()).startswith("checkov bicep: passed 28, failed 0, skipped 17, parsing_errors 0")


def test_a_failed_check_fails_the_gate() -> None:
    """The check, the resource and the file are named."""
    failed = {
        "check_id": "CKV_AZURE_35",
        "resource": "Microsoft.Storage/storageAccounts.account",
        "file_path": "/app/storage.bicep",
    }
    assert problems(report(failed=[failed])) == [
        "failed CKV_AZURE_35 on Microsoft.Storage/storageAccounts.account (/app/storage.bicep)"
    ]


def test_a_file_checkov_could_not_parse_fails_the_gate_although_checkov_exits_0() -> None:
    """pycep-parser 0.5.1 refuses newer Bicep (e.g. deployer()); such a file was not scanned at all."""
    assert problems(report(unparsed=["/work/infra/main.bicep"])) == [
        "not parsed (so not scanned): /work/infra/main.bicep"
    ]


def test_an_empty_report_fails_the_gate() -> None:
    """No bicep summary means nothing was scanned (wrong folder, no files)."""
    assert problems([]) == ["the report has no bicep summary: checkov scanned nothing"]

"""The docs stay true: README's "Sending jobs" links every example file; bcjobs/README.md lists every exit code."""

from __future__ import annotations

import re
from pathlib import Path

from bcjobs import Operation
from bcjobs.cli import ExitCode

ROOT = Path(__file__).resolve().parents[3]


def section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_sending_jobs_links_every_example_and_names_every_operation() -> None:
    """One example per operation, each file linked from the README section apps read."""
    docs = section((ROOT / "README.md").read_text(encoding="utf-8"), "Sending jobs")
    for path in (ROOT / "examples" / "jobs").glob("*.json"):
        assert f"(examples/jobs/{path.name})" in docs, path.name
    for operation in Operation:
        assert f"| `{operation.value}` |" in docs, operation.value
    for where in (
        "bc-results",
        "GET /api/jobs/{jobId}",
        "{BC_TABLE_PREFIX}jobs",
        "schemas/bc-job.v1.schema.json",
    ):
        assert where in docs, where


def test_the_client_readme_documents_every_exit_code() -> None:
    """The exit-code table in bcjobs/README.md has one row per ExitCode."""
    docs = (ROOT / "bcjobs" / "README.md").read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", docs, flags=re.MULTILINE)}
    assert documented == {int(code) for code in ExitCode}

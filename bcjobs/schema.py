"""The published JSON Schemas, generated from the models: `python -m bcjobs.schema [--check]`.

`schemas/bc-job.v1.schema.json` is what an app in any language validates against before it enqueues;
`schemas/bc-job-report.v1.schema.json` describes the results queue messages and the status route's body;
`schemas/bc-change.v1.schema.json` the change feed's CloudEvents (the `bc-changes` queue, `GET /api/changes`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bcjobs.changes import ChangeEvent
from bcjobs.models import Job
from bcjobs.results import JobReport

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
BASE_ID = "https://schemas.bc-integration.example/"


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (draft 2020-12), wire names."""
    return {
        "bc-job.v1.schema.json": _schema(Job, "bc-job.v1.schema.json", "A Business Central job (v1)"),
        "bc-job-report.v1.schema.json": _schema(
            JobReport, "bc-job-report.v1.schema.json", "A Business Central job's state and result (v1)"
        ),
        "bc-change.v1.schema.json": _schema(
            ChangeEvent,
            "bc-change.v1.schema.json",
            "A change of a Business Central entity (CloudEvents 1.0, v1)",
        ),
    }


def rendered(schema: dict[str, Any]) -> str:
    """The file's exact text."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _schema(model: type[BaseModel], name: str, title: str) -> dict[str, Any]:
    body = model.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": BASE_ID + name,
        **body,
        "title": title,
    }


def main(argv: list[str] | None = None) -> int:
    """Write the schema files, or with --check exit 1 when a file differs from the models."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, schema in schemas().items():
        path = SCHEMA_DIR / name
        text = rendered(schema)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            SCHEMA_DIR.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write(f"out of date: {', '.join(stale)}; run python -m bcjobs.schema\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

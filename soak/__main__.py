"""python -m soak [--short] [--jobs N] [--workers N] [--load-seconds S] [--seed N] [--keep DIR]

Runs the chaos soak and prints its figures as one JSON line (the last line of stdout). Exit code 0 when nothing
was lost, duplicated, left unfinished or leaked and no invariant broke; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from devhost.help_format import DefaultsHelp
from soak.config import SoakConfig
from soak.run import run_soak


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m soak", description="Chaos soak of the job pipeline.", formatter_class=DefaultsHelp
    )
    parser.add_argument(
        "--short", action="store_true", help="the 60-second version make test runs (600 jobs, 2 workers)"
    )
    parser.add_argument("--jobs", type=int, help="distinct jobs to send (default: 5000; --short: 600)")
    parser.add_argument("--workers", type=int, help="devhost worker processes (default: 3; --short: 2)")
    parser.add_argument(
        "--load-seconds", type=float, help="seconds the jobs are sent over (default: 300; --short: 60)"
    )
    parser.add_argument("--seed", type=int, help="the workload's random seed (default: 13)")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the run's folder (worker logs, Azurite data) here (default: a temporary folder, deleted)",
    )
    return parser.parse_args(argv)


def passed(figures: dict[str, object]) -> bool:
    """The run's verdict from its figures."""
    zero = ("lost", "duplicate_records", "non_terminal", "missing_effects", "injection_leaks")
    return all(figures.get(name) == 0 for name in (*zero, "invariant_violations", "secrets_found"))


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    changes = {
        name: value
        for name, value in (
            ("jobs", args.jobs),
            ("workers", args.workers),
            ("load_seconds", args.load_seconds),
            ("seed", args.seed),
            ("work_dir", args.keep),
        )
        if value is not None
    }
    config = SoakConfig.short(**changes) if args.short else SoakConfig.full(**changes)
    outcome = run_soak(config)
    for text in outcome.violations:
        print(f"invariant violated: {text}", file=sys.stderr)
    for finding in outcome.findings:
        print(f"secret found: {finding}", file=sys.stderr)
    print(json.dumps(outcome.figures, default=str), flush=True)
    return 0 if passed(outcome.figures) else 1


if __name__ == "__main__":
    sys.exit(main())

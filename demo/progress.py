"""Live progress of the main run: a bar of final jobs with counts by outcome, BC requests and 429s.

On a terminal it is a rich progress bar (on stderr, so stdout stays the transcript and the final JSON line);
elsewhere, with progress on, one plain line every few seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from bcjobs import JobState
from demo.context import DemoContext

PLAIN_EVERY_SECONDS = 5.0


def statuses(stats: dict[str, Any]) -> Counter[str]:
    """BC requests by status over every identity (status "0": a dropped connection)."""
    total: Counter[str] = Counter()
    for by_status in stats.get("bc", {}).get("requests", {}).values():
        total.update({str(status): int(count) for status, count in by_status.items()})
    return total


def token_calls(stats: dict[str, Any]) -> Counter[str]:
    """Entra token-endpoint calls by grant type."""
    return Counter({str(k): int(v) for k, v in stats.get("entra", {}).get("token_calls", {}).items()})


def delta(after: Counter[str], before: Counter[str]) -> Counter[str]:
    """after - before, keeping only positive counts."""
    return Counter(
        {key: after[key] - before.get(key, 0) for key in after if after[key] - before.get(key, 0) > 0}
    )


class LiveProgress:
    """Shows the run's progress while `update` is fed the jobs Table and the sandbox's counters."""

    def __init__(self, context: DemoContext, total: int) -> None:
        self._context = context
        self._total = total
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last_plain = 0.0
        self.line = ""

    def __enter__(self) -> LiveProgress:
        console = self._context.console
        if self._context.options.progress and console is not None and console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]jobs"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=console,
            )
            self._task = self._progress.add_task("jobs", total=self._total, info="sending…")
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, rows: dict[str, dict[str, Any]], stats: dict[str, Any]) -> None:
        """Counts by state, BC requests and 429s since the main run began."""
        states = Counter(JobState(row["State"]) for row in rows.values())
        final = sum(n for state, n in states.items() if state.terminal)
        before = self._context.stats_before
        bc = delta(statuses(stats), statuses(before))
        refreshes = sum(delta(token_calls(stats), token_calls(before)).values())
        waiting = states[JobState.RETRY_SCHEDULED] + states[JobState.WAITING_FOR_AUTHORIZATION]
        self.line = (
            f"ok {states[JobState.SUCCEEDED]} failed {states[JobState.FAILED]} "
            f"rejected {states[JobState.REJECTED]} running {states[JobState.RUNNING]} retrying {waiting} │ "
            f"BC {sum(bc.values())} req, 429s {bc['429']}, 5xx {bc['503'] + bc['504']}, "
            f"dropped {bc['0']} │ token calls {refreshes}"
        )
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=final, info=self.line)
        elif self._context.options.progress and time.monotonic() - self._last_plain >= PLAIN_EVERY_SECONDS:
            self._last_plain = time.monotonic()
            self._context.out(f"      progress: {final}/{self._total} final │ {self.line}")

    def note(self, line: str) -> None:
        """An event worth a line of its own above the bar."""
        if self._progress is not None:
            self._progress.console.print(f"  {line}", markup=False, highlight=False)
        elif self._context.options.progress:
            self._context.out(f"      {line}")

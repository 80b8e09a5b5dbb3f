"""Invariants checked while the soak runs, not only at the end.

Every second: BC's own counters (the sandbox's peak and current in-flight requests per identity, and whether
any request ever had to queue at BC: the product's throttle promises at most 5 outstanding per identity).
Every few seconds: the job rows changed since the last look (Table `Timestamp`) — a terminal state never
changes, attempts never exceed the limit, attempts never exceed runs. Continuously: the `bc-results` queue is
drained the way an app reads it, and every report must agree with what was seen before for that job.
Storage being down (the Azurite restart) only delays a look; it is counted, never fatal.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError

from bcjobs import RESULTS_QUEUE, JobReport, JobState
from soak.world import World

logger = logging.getLogger("soak.monitor")
TERMINAL = {state.value for state in JobState if state.terminal}
MAX_IN_FLIGHT = 5
KEPT_VIOLATIONS = 50


@dataclass
class Seen:
    """What the monitor knows of one job."""

    state: str
    attempts: int = 0
    finished_at: Any = None
    row: dict[str, Any] = field(default_factory=dict)


@dataclass
class Monitor:
    """Runs on its own thread until `stop()`; `violations` must stay empty."""

    world: World
    max_attempts: int
    jobs: dict[str, Seen] = field(default_factory=dict)
    reported: dict[str, str] = field(default_factory=dict)  # job id -> terminal state of its first report
    results: int = 0
    result_texts: list[str] = field(default_factory=list)
    invariants_checked: int = 0
    violation_count: int = 0
    violations: list[str] = field(default_factory=list)
    storage_errors: int = 0
    scans: int = 0
    failures: list[str] = field(default_factory=list)  # exceptions of the monitor's own loop
    token_sets: set[str] = field(default_factory=set)  # every token-set value Key Vault held (for the sweep)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _since: datetime | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="soak-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        tick = 0
        while not self._stop.is_set():
            try:
                self.check_bc()
                self.drain_results()
                if tick % 3 == 0:
                    self.scan()
                if tick % 10 == 0:
                    self.keep_token_sets()
                    self.progress()
            except Exception as exc:  # noqa: BLE001 - the monitor must outlive a bad moment; it is reported
                self.failures.append(f"{type(exc).__name__}: {exc}")
            tick += 1
            self._stop.wait(1.0)

    # -- the checks ------------------------------------------------------------------------------------------

    def violate(self, text: str) -> None:
        with self._lock:
            self.violation_count += 1
            if len(self.violations) < KEPT_VIOLATIONS:
                self.violations.append(text)

    def check_bc(self) -> None:
        """At most 5 in flight per identity, and nothing ever queued at BC (the throttle kept below its limit)."""
        stats = self.world.sandbox.bc.stats()
        for identity, peak in stats.peak_in_flight.items():
            if peak > MAX_IN_FLIGHT:
                self.violate(f"BC saw {peak} requests in flight for one identity")
            if stats.in_flight.get(identity, 0) > MAX_IN_FLIGHT:
                self.violate("BC has more than 5 requests in flight for one identity")
            if stats.peak_queued.get(identity, 0) > 0:
                self.violate(f"{stats.peak_queued[identity]} requests had to queue at BC (more than 5 sent)")
            self.invariants_checked += 3

    def scan(self, full: bool = False) -> None:
        """Check the rows changed since the last scan (every row when `full`)."""
        started = datetime.now(UTC)
        since = None if full else self._since
        # job rows only: a job's audit rows share its partition (shared/jobs/audit.py)
        query = "RowKey eq 'job'"
        if since is not None:
            query += f" and Timestamp ge datetime'{since.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"
        try:
            rows = self.world.rows("jobs", query)
        except AzureError:
            self.storage_errors += 1
            return
        for row in rows:
            self.check_row(row)
        self.scans += 1
        if not full:
            # Overlap: a row written during the scan is read again.
            self._since = started - timedelta(seconds=5)

    def check_row(self, row: dict[str, Any]) -> None:
        job_id = str(row["PartitionKey"])
        state = str(row.get("State"))
        attempts = int(row.get("Attempts") or 0)
        runs = int(row.get("Runs") or 0)
        if state not in {s.value for s in JobState}:
            self.violate(f"job {job_id} has an unknown state {state!r}")
        if attempts > self.max_attempts:
            self.violate(f"job {job_id} used {attempts} attempts (limit {self.max_attempts})")
        if attempts > runs:
            self.violate(f"job {job_id} counts {attempts} attempts in {runs} runs")
        with self._lock:
            before = self.jobs.get(job_id)
            if before is not None and before.state in TERMINAL:
                if (state, row.get("FinishedAt")) != (before.state, before.finished_at):
                    self.violate(f"job {job_id} changed from terminal {before.state} to {state}")
                    self.jobs[job_id] = Seen(state, attempts, row.get("FinishedAt"), row)
            else:
                self.jobs[job_id] = Seen(state, attempts, row.get("FinishedAt"), row)
            reported = self.reported.get(job_id)
        if reported is not None and state in TERMINAL and reported != state:
            self.violate(f"job {job_id} is {state} but its report said {reported}")
        self.invariants_checked += 5

    def drain_results(self) -> None:
        """Receive, check and delete every report on bc-results (as an app's results reader does)."""
        try:
            with self.world.queue(RESULTS_QUEUE) as queue:
                while True:
                    batch = list(
                        queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30)
                    )
                    if not batch:
                        return
                    for message in batch:
                        self._check_report(base64.b64decode(message.content).decode("utf-8"))
                        with contextlib.suppress(AzureError):
                            queue.delete_message(message)
        except AzureError:
            self.storage_errors += 1

    def _check_report(self, text: str) -> None:
        report = JobReport.model_validate_json(text)
        self.results += 1
        self.result_texts.append(text)
        state = report.state.value if isinstance(report.state, JobState) else str(report.state)
        if state not in TERMINAL:
            self.violate(f"a report for job {report.job_id} says {state}, not a terminal state")
        with self._lock:
            first = self.reported.setdefault(report.job_id, state)
            seen = self.jobs.get(report.job_id)
        if first != state:
            self.violate(f"job {report.job_id} was reported {first}, then {state}")
        if seen is not None and seen.state in TERMINAL and seen.state != state:
            self.violate(f"job {report.job_id} reported {state} while its row is {seen.state}")
        self.invariants_checked += 3

    def keep_token_sets(self) -> None:
        """Every version of the connection's Key Vault secret (the sweep looks for their tokens)."""
        stored = self.world.sandbox.vault.live(f"bc-token-{self.world.connection}")
        if stored is not None:
            self.token_sets.update(version.value for version in stored.versions)

    def progress(self) -> None:
        states = Counter(self.states().values())
        logger.info(
            "soak: %d jobs seen, %d terminal, %d reports, %d violations",
            sum(states.values()),
            sum(n for state, n in states.items() if state in TERMINAL),
            self.results,
            self.violation_count,
        )

    # -- the end ---------------------------------------------------------------------------------------------

    def states(self) -> dict[str, str]:
        with self._lock:
            return {job_id: seen.state for job_id, seen in self.jobs.items()}

    def open_keys(self, keys: set[str]) -> set[str]:
        """The keys whose row the monitor has not seen terminal (yet)."""
        states = self.states()
        return {key for key in keys if states.get(key) not in TERMINAL}

    def wait_terminal(self, keys: set[str], timeout: float) -> set[str]:
        """Poll the monitor's view (kept current by its scans) until every key's row is terminal; then one
        full scan decides. Returns the keys still not terminal when time runs out."""
        deadline = time.monotonic() + timeout
        while self.open_keys(keys) and time.monotonic() < deadline:
            self._stop.wait(2.0)
        self.scan(full=True)
        return self.open_keys(keys)

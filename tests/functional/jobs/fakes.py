"""Doubles for the JobProcessor's two outside calls: the BC work (a scripted JobRunner) and the token seam."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bcjobs import Job, ResultSummary
from shared.bc import Interaction as BcInteraction
from shared.clock import Clock
from shared.jobs.audit import JobRecorder
from shared.jobs.runner import AnswerTrail, Budget, EarlierRuns, JobRunner
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken, TokenProviderError

Outcome = ResultSummary | Exception


def wire(value: Any) -> str:
    """A job as the queue's text: base64 of its JSON."""
    return base64.b64encode(json.dumps(value).encode("utf-8")).decode("ascii")


@dataclass
class Call:
    """One run the processor asked for."""

    job: Job
    earlier: EarlierRuns


class ScriptedRunner(JobRunner):
    """A JobRunner that does no BC work: each run takes the next scripted outcome (raised when an exception,
    returned when a ResultSummary; a plain success once the script is empty) and records the BC requests it
    would have made through the same JobRecorder the real client reports to.

    `hold`, when set, makes runs wait for it after they started (a run still in progress)."""

    def __init__(self, *outcomes: Outcome, requests_per_run: int = 1) -> None:
        # The real runner's BC client is not needed: run() is all the processor calls.
        self.outcomes: list[Outcome] = list(outcomes)
        self.calls: list[Call] = []
        self.requests_per_run = requests_per_run
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()
        self._recorder = JobRecorder()

    def script(self, *outcomes: Outcome) -> None:
        """Append outcomes for the next runs."""
        self.outcomes.extend(outcomes)

    async def run(self, job: Job, earlier: EarlierRuns, budget: Budget, trail: AnswerTrail) -> ResultSummary:
        """Play the next outcome."""
        del budget, trail
        self.calls.append(Call(job, earlier))
        run = len(self.calls)
        for number in range(1, self.requests_per_run + 1):
            self._recorder.record(
                BcInteraction(
                    method="POST",
                    path=f"/api/v2.0/companies/run{run}/request{number}",
                    status=201,
                    duration_ms=10.0,
                    try_number=1,
                    client_request_id=f"cr-{run}-{number}",
                    request_id=f"bc-{run}-{number}",
                )
            )
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        outcome = self.outcomes.pop(0) if self.outcomes else ResultSummary(id=f"record-{run}")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@dataclass
class FakeTokens:
    """A TokenProvider: hands out an opaque token valid for an hour, or raises the next scripted failure."""

    clock: Clock
    failures: list[TokenProviderError] = field(default_factory=list)
    asked: list[timedelta] = field(default_factory=list)

    def fail_with(self, *failures: TokenProviderError) -> None:
        """The next calls raise these, in order."""
        self.failures.extend(failures)

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """A token valid for an hour, or the next failure."""
        self.asked.append(min_validity)
        if self.failures:
            raise self.failures.pop(0)
        return AccessToken("opaque-test-token", self.clock.now() + timedelta(hours=1))

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        """Same as token()."""
        return await self.token()


def steps_of(calls: Sequence[Call]) -> list[bool]:
    """Whether each run was told an earlier run may have written (EarlierRuns.ambiguous)."""
    return [call.earlier.ambiguous for call in calls]

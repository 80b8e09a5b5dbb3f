"""Every retry, pause and backoff number of the BC client, in one place.

In-request retries (each repeat is another *try* of the same request; an *attempt* is the job layer's
word for a run that reached BC) are only for brief transient failures: a 429/503 whose Retry-After is at most
`max_inline_wait_seconds`, a connection failure, a timeout of an idempotent request, all inside a total
waiting budget well below a Functions invocation's time. Anything longer is raised unchanged (with
`retry_after`) so the job layer re-enqueues with a visibility delay instead of paying for a sleeping function.

A non-idempotent request (POST, PATCH) is repeated only when BC surely did not process it: 429 (refused by the
throttling gate), 503 (BC's queue timeout or maintenance) or a connection that never opened
(learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/operational-limits-online).

A failing TokenProvider is not retried in-request: the provider has its own retries (and its own outage
handling), so repeating it here would only multiply them; the job layer re-enqueues.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shared.backoff import exponential_backoff
from shared.bc.errors import (
    BusinessCentralError,
    ServiceUnavailableError,
    ThrottledError,
    TokenAcquisitionError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a BC request is retried in-request, and how long a throttling answer pauses every instance."""

    max_tries: int = 3
    # Total in-request waiting across tries.
    budget_seconds: float = 8.0
    # A Retry-After above this is not waited for in-request: the error goes to the job layer.
    max_inline_wait_seconds: float = 4.0
    backoff_initial_seconds: float = 0.25
    backoff_max_seconds: float = 2.0
    # Share of each backoff delay that is randomised (0 = none, 1 = "full jitter").
    jitter: float = 0.5
    # A 429/503 without Retry-After still pauses everyone: BC documents Retry-After only on 502/503
    # (learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/web-service-troubleshooting).
    default_pause_seconds: float = 2.0

    def next_delay(
        self,
        error: BusinessCentralError,
        *,
        try_number: int,
        waited: float,
        idempotent: bool,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before try `try_number + 1`, or None to raise `error` now."""
        if not error.retriable or try_number >= self.max_tries or isinstance(error, TokenAcquisitionError):
            return None
        if not idempotent and not surely_unprocessed(error):
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_inline_wait_seconds:
                return None
            delay = error.retry_after
        else:
            delay = self.backoff(try_number, rng)
        if waited + delay > self.budget_seconds:
            return None
        return delay

    def backoff(self, try_number: int, rng: random.Random | None = None) -> float:
        """Exponential backoff after failed try `try_number` (1-based): initial * 2**(n-1), capped, jittered down."""
        return exponential_backoff(
            try_number,
            self.backoff_initial_seconds,
            self.backoff_max_seconds,
            jitter=self.jitter,
            spread="below",
            rng=rng,
        )

    def pause_for(self, error: BusinessCentralError) -> float | None:
        """How long every instance pauses after `error`, or None when it says nothing about BC's load."""
        if isinstance(error, ThrottledError) or (
            isinstance(error, ServiceUnavailableError) and error.status in (502, 503)
        ):
            return error.retry_after if error.retry_after is not None else self.default_pause_seconds
        return None


def surely_unprocessed(error: BusinessCentralError) -> bool:
    """True when BC certainly did not act on the request: refused at its gate (429), 503, or never reached."""
    return isinstance(error, ThrottledError) or error.status == 503 or not error.request_sent


DEFAULT_RETRY_POLICY = RetryPolicy()

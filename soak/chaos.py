"""The disruptions of a soak run, on a schedule relative to the load phase.

Background: BC's fault rates for the whole run (429/408/502/503/504, dropped connections, ambiguous writes).
Then, in order: a Key Vault outage, Entra down (every token request answered 503), one worker SIGKILLed while
BC holds requests and started again, Azurite stopped and started (its data kept), BC down (every request 503),
and the sandbox clock jumping one token lifetime so BC and Key Vault refuse every token the workers hold.
Each event is logged with its offset; waiting for the next one is the schedule itself, not a guess.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from localworld.polling import wait_until
from soak.config import SoakConfig
from soak.world import World

logger = logging.getLogger("soak.chaos")
OUTAGE_TOKEN_FAILURES = 1_000_000  # "every token request from now on": ended by entra.reset()


@dataclass
class Chaos:
    """Runs the timeline on its own thread; `events` records what happened when."""

    world: World
    config: SoakConfig
    started: float = 0.0
    events: list[dict[str, object]] = field(default_factory=list)
    moments: dict[str, datetime] = field(default_factory=dict)  # event -> wall-clock time (UTC)
    entra_calls: Counter[str] = field(default_factory=Counter)  # token calls counted before entra.reset()
    entra_errors: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    at_refusal: dict[str, int] = field(default_factory=dict)  # BC's and Key Vault's counters when tokens die
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, started: float) -> None:
        self.started = started
        self.world.sandbox.bc.faults(**self.config.faults.knobs())
        self._note("bc_faults_on")
        self._thread = threading.Thread(target=self._run, name="soak-chaos", daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait until the timeline has run out."""
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> None:
        """Cut the timeline short (an outage in progress is ended at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _note(self, event: str, **details: object) -> None:
        self.moments[event] = datetime.now(UTC)
        entry: dict[str, object] = {
            "at": round(time.monotonic() - self.started, 1),
            "event": event,
            **details,
        }
        self.events.append(entry)
        logger.info("chaos: %s", event, extra={"fields": entry})

    def _at(self, share: float) -> bool:
        """Wait until `share` of the load phase has passed; False when stopped."""
        delay = self.started + share * self.config.load_seconds - time.monotonic()
        return not (delay > 0 and self._stop.wait(delay))

    def _for(self, seconds: float) -> bool:
        return not self._stop.wait(seconds)

    def _run(self) -> None:
        timeline = self.config.timeline
        steps: list[tuple[float, Callable[[], None]]] = [
            (timeline.vault_outage_at, self._vault_outage),
            (timeline.entra_outage_at, self._entra_outage),
            (timeline.worker_kill_at, self._kill_a_worker),
            (timeline.azurite_restart_at, self._restart_azurite),
            (timeline.bc_outage_at, self._bc_outage),
            (timeline.tokens_die_at, self._tokens_die),
        ]
        for share, step in steps:
            if not self._at(share):
                return
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - a lever that failed is a finding, the run goes on
                self.failures.append(f"{step.__name__}: {type(exc).__name__}: {exc}")
                self._note("lever_failed", lever=step.__name__)

    def _vault_outage(self) -> None:
        vault = self.world.sandbox.vault
        vault.outage = True
        self._note("vault_outage_start")
        self._for(self.config.timeline.vault_outage_seconds)
        vault.outage = False
        self._note("vault_outage_end")

    def _entra_outage(self) -> None:
        entra = self.world.sandbox.entra
        entra.fail_next_token_calls(OUTAGE_TOKEN_FAILURES, 503, retry_after=0)
        self._note("entra_outage_start")
        self._for(self.config.timeline.entra_outage_seconds)
        self.entra_calls.update(entra.token_calls)
        self.entra_errors.update(entra.token_errors)
        entra.reset()  # ends the outage; its counters start again (kept above); the token lifetime is the config's
        self._note("entra_outage_end")

    def _kill_a_worker(self) -> None:
        worker = self.world.workers[-1]
        bc = self.world.sandbox.bc
        # Mid-job: wait (briefly) until BC holds a request.
        with contextlib.suppress(TimeoutError):
            wait_until(
                lambda: sum(bc.stats().in_flight.values()) > 0,
                timeout=5,
                what="a request at BC",
                interval=0.01,
            )
        self.world.kill_worker(worker)
        self._note("worker_killed", worker=worker.index)
        self._for(self.config.timeline.worker_down_seconds)
        self.world.start_worker(worker)
        self._note("worker_restarted", worker=worker.index)

    def _restart_azurite(self) -> None:
        self._note("azurite_stopping")
        self.world.restart_azurite(self.config.timeline.azurite_down_seconds)
        self._note("azurite_restarted")

    def _bc_outage(self) -> None:
        bc = self.world.sandbox.bc
        bc.faults(**{**self.config.faults.knobs(), "rate_503": 1.0})
        self._note("bc_outage_start")
        self._for(self.config.timeline.bc_outage_seconds)
        bc.faults(**self.config.faults.knobs())
        self._note("bc_outage_end")

    def _tokens_die(self) -> None:
        stats = self.world.sandbox.bc.stats()
        self.at_refusal = {
            "bc_requests": stats.count(),
            "bc_401": stats.count(401),
            "vault_reads": self.world.sandbox.vault.reads,
        }
        self.world.sandbox.clock.advance(self.config.token_lifetime_seconds + 1)
        self._note("tokens_expired_at_bc")

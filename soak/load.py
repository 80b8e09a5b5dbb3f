"""Sends the plan on schedule, the way applications do: queue messages, and POST /api/jobs on the workers.

A send is retried until storage or the front door took it (an Azurite restart or a killed worker in between);
a retry after an answer that was lost may put a second copy on the queue, which is exactly the at-least-once
delivery the product must absorb. Front-door jobs go in groups of up to 20; a 503 names the ones not enqueued,
only those are sent again.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from azure.core.exceptions import AzureError

from bcjobs import JOBS_QUEUE
from soak.plan import Plan, Planned, Route
from soak.world import World

FRONT_DOOR_GROUP = 20
RETRY_PAUSE = 0.5


@dataclass
class Sender:
    """Runs the plan on its own thread; `keys` maps every distinct send to the row key its job ends under."""

    world: World
    plan: Plan
    started: float = 0.0
    keys: dict[int, str] = field(default_factory=dict)  # index in plan.sends -> job row key
    sent: int = 0
    queue_retries: int = 0
    front_door_requests: int = 0
    front_door_retries: int = 0
    front_door_statuses: dict[int, int] = field(default_factory=dict)
    http_texts: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _next_worker: int = 0
    _last_front_door: Planned | None = None

    def start(self) -> None:
        self._last_front_door = next(
            (p for p in reversed(self.plan.sends) if p.route is Route.FRONT_DOOR), None
        )
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="soak-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _run(self) -> None:
        try:
            self._send_all()
        except Exception as exc:  # noqa: BLE001 - reported in the figures; the run still drains what was sent
            self.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.done.set()

    def _send_all(self) -> None:
        group: list[tuple[int, Planned]] = []
        for index, planned in enumerate(self.plan.sends):
            delay = planned.at - self.elapsed()
            if delay > 0 and self._stop.wait(delay):
                return
            if planned.route is Route.FRONT_DOOR:
                group.append((index, planned))
                if len(group) >= FRONT_DOOR_GROUP or planned is self._last_front_door:
                    self._post(group)
                    group = []
                continue
            self._enqueue(index, planned)
            if group and self.elapsed() - group[0][1].at > 1.0:
                self._post(group)
                group = []
        if group:
            self._post(group)

    # -- the queue ---------------------------------------------------------------------------------------------

    def _enqueue(self, index: int, planned: Planned) -> None:
        while not self._stop.is_set():
            try:
                with self.world.queue(JOBS_QUEUE) as queue:
                    message = queue.send_message(planned.text())
            except AzureError:
                self.queue_retries += 1
                self._stop.wait(RETRY_PAUSE)
                continue
            self.sent += 1
            if not planned.duplicate:
                self.keys[index] = planned.key or f"msg-{message.id}"
            return

    # -- the front door ----------------------------------------------------------------------------------------

    def _post(self, group: list[tuple[int, Planned]]) -> None:
        pending = dict(group)
        while pending and not self._stop.is_set():
            body = [planned.job for planned in pending.values()]
            answer = self._request(body)
            if answer is None:
                self.front_door_retries += 1
                self._stop.wait(RETRY_PAUSE)
                continue
            status, payload = answer
            if status == 202:
                accepted = pending
                pending = {}
            elif status == 503 and isinstance(payload, dict):
                not_sent = {entry.get("jobId") for entry in payload.get("notEnqueued", [])}
                accepted = {i: p for i, p in pending.items() if p.key not in not_sent}
                pending = {i: p for i, p in pending.items() if p.key in not_sent}
                self.front_door_retries += 1
                self._stop.wait(RETRY_PAUSE)
            else:
                raise RuntimeError(f"POST /api/jobs answered {status} to valid jobs: {payload}")
            for index, planned in accepted.items():
                self.keys[index] = planned.key
                self.sent += 1

    def _request(self, body: list[Any]) -> tuple[int, Any] | None:
        workers = self.world.live_workers()
        if not workers:
            return None
        worker = workers[self._next_worker % len(workers)]
        self._next_worker += 1
        self.front_door_requests += 1
        try:
            response = httpx.post(
                f"{worker.base_url}/api/jobs",
                params={"code": self.world.function_key},
                json=body,
                timeout=30,
            )
        except httpx.HTTPError:
            return None
        self.front_door_statuses[response.status_code] = (
            self.front_door_statuses.get(response.status_code, 0) + 1
        )
        self.http_texts.append(response.text)
        if response.status_code >= 500 and response.status_code != 503:
            return None
        try:
            return response.status_code, response.json()
        except json.JSONDecodeError:
            return response.status_code, response.text

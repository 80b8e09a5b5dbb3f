"""One soak run, start to finish: world up, sign-in, load + chaos + monitor, drain, figures, evidence, world down.

`run_soak(config)` returns a SoakOutcome: `figures` (the JSON line), `violations` (invariants broken while
running), `evidence` and `secrets` (for the sweep, which the figures summarise as `secrets_found`).
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import AzureError

from bcjobs import JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE, JobState
from soak.chaos import Chaos
from soak.config import SoakConfig
from soak.load import Sender
from soak.monitor import TERMINAL, Monitor
from soak.plan import Plan, Planned, build_plan
from soak.sweep import Evidence, sweep, token_secrets
from soak.world import SignIn, World

logger = logging.getLogger("soak")
STATUS_SAMPLE = 200  # succeeded jobs whose status route is read for the sweep (every other job's is read too)


@dataclass
class SoakOutcome:
    """What a run measured and what it produced."""

    figures: dict[str, Any]
    violations: list[str]
    evidence: Evidence
    secrets: dict[str, str]
    findings: list[str] = field(default_factory=list)


class _Records(logging.Handler):
    """This process's log records, rendered as the sweep reads them (message, extras, exception)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = f"{record.msg!s} {record.args!r}"
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        exception = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.texts.append(f"{record.name} {text} {extras!r} {exception}")


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextmanager
def _collecting() -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous, logging.INFO) if previous else logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def run_soak(config: SoakConfig) -> SoakOutcome:
    """Run the soak described by `config` (blocking; minutes)."""
    run_id = uuid.uuid4().hex[:6]
    work_dir = config.work_dir or Path(tempfile.mkdtemp(prefix="soak-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    world = World(config, run_id, work_dir)
    try:
        with _collecting() as records:
            outcome = _run(config, world)
            outcome.evidence.add("soak process log records", records.texts)
        outcome.findings = sweep(outcome.evidence, outcome.secrets)
        outcome.figures["secrets_found"] = len(outcome.findings)
        outcome.figures["evidence"] = outcome.evidence.counts()
        return outcome
    finally:
        if config.work_dir is None and not config.keep_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


def _run(config: SoakConfig, world: World) -> SoakOutcome:
    began = time.monotonic()
    evidence = Evidence()
    monitor: Monitor | None = None
    sender: Sender | None = None
    chaos: Chaos | None = None
    try:
        world.start()
        signed_in = world.sign_in()
        evidence.add("HTTP answers", signed_in.pages)
        plan = build_plan(config, world.seeds(), world.run_id)
        monitor = Monitor(world, config.max_attempts)
        sender = Sender(world, plan)
        chaos = Chaos(world, config)
        monitor.start()
        sender.start()
        chaos.start(sender.started)
        sender.done.wait()
        chaos.join()  # every disruption has happened and ended (an outage is never left on)
        loaded = time.monotonic() - sender.started
        keys = set(sender.keys.values())
        still_open = monitor.wait_terminal(keys, config.drain_seconds)
        drained = time.monotonic() - sender.started - loaded
        _settle_results(monitor, keys, timeout=60)
        monitor.stop()
        monitor.keep_token_sets()
        evidence.add("HTTP answers", sender.http_texts)
        evidence.add("HTTP answers", _read_routes(world, monitor))
        figures = _figures(config, world, plan, sender, monitor, chaos, keys, still_open)
        figures["worker_exit_codes"] = _stop_workers(world)
        evidence.add("bc-results messages", monitor.result_texts)
        evidence.add("Table rows", _table_rows(world))
        evidence.add("queue messages", _queue_texts(world))
        evidence.add(
            "worker logs", [path.read_text(encoding="utf-8", errors="replace") for path in _logs(world)]
        )
        secrets = _secrets(world, signed_in, monitor)
        figures.update(
            {
                "load_s": round(loaded, 1),
                "drain_s": round(drained, 1),
                "duration_s": round(time.monotonic() - began, 1),
            }
        )
        return SoakOutcome(figures, list(monitor.violations), evidence, secrets)
    finally:
        for part in (sender, chaos, monitor):
            if part is not None:
                part.stop()
        world.stop()


def _settle_results(monitor: Monitor, keys: set[str], timeout: float) -> None:
    """Give the results queue a moment to carry the last reports (the monitor drains it every second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and keys - set(monitor.reported):
        time.sleep(1.0)
    monitor.drain_results()


def _stop_workers(world: World) -> list[int | None]:
    codes: list[int | None] = []
    for worker in world.workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.terminate()
    for worker in world.workers:
        if worker.process is not None:
            try:
                worker.process.wait(timeout=30)
            except Exception:  # noqa: BLE001 - a worker that does not stop is killed and reported
                worker.process.kill()
                worker.process.wait()
            codes.append(worker.process.returncode)
    return codes


def _logs(world: World) -> list[Path]:
    return [path for worker in world.workers for path in worker.logs if path.exists()]


# -- figures ---------------------------------------------------------------------------------------------------


def _figures(
    config: SoakConfig,
    world: World,
    plan: Plan,
    sender: Sender,
    monitor: Monitor,
    chaos: Chaos,
    keys: set[str],
    still_open: set[str],
) -> dict[str, Any]:
    states = monitor.states()
    rows = {job_id: seen.row for job_id, seen in monitor.jobs.items()}
    distinct = {index: plan.sends[index] for index in sender.keys}
    by_key = {sender.keys[index]: planned for index, planned in distinct.items()}
    final = Counter(states.get(key, "missing") for key in keys)
    bc = world.sandbox.bc
    stats = bc.stats()
    effects = _effects(world, by_key, states, rows)
    entra = world.sandbox.entra
    chaos.entra_calls.update(entra.token_calls)
    failed_codes = Counter(
        json.loads(rows[key]["Error"]).get("code", "?")
        for key in keys
        if states.get(key) == JobState.FAILED.value and rows[key].get("Error")
    )
    figures: dict[str, Any] = {
        "soak": "issue-13",
        "jobs_planned": config.jobs,
        "workers": config.workers,
        "enqueued": len(keys),
        "sends": sender.sent,
        "duplicate_deliveries": sum(1 for planned in plan.sends if planned.duplicate),
        "front_door_jobs": sum(1 for planned in distinct.values() if planned.route.value == "front_door"),
        "malformed": sum(1 for planned in distinct.values() if planned.kind == "malformed"),
        **{state.value: final.get(state.value, 0) for state in JobState if state.terminal},
        "lost": final.get("missing", 0),
        "non_terminal": len(still_open) - final.get("missing", 0),
        "duplicate_records": effects["duplicate_records"],
        "missing_effects": effects["missing_effects"],
        "injection_leaks": effects["injection_leaks"],
        "ambiguous_failures_applied_in_bc": effects["ambiguous_failures_applied"],
        "bc_calls_per_job": round(stats.count() / max(1, len(keys)), 2),
        "bc_requests": stats.count(),
        "bc_requests_by_status": {str(code): n for code, n in sorted(_by_status(stats.requests).items())},
        "faults_injected": dict(stats.faults_injected),
        "peak_in_flight_per_identity": max(stats.peak_in_flight.values(), default=0),
        "peak_queued_at_bc": max(stats.peak_queued.values(), default=0),
        "invariants_checked": monitor.invariants_checked,
        "invariant_violations": monitor.violation_count,
        "results_received": monitor.results,
        "missing_results": len({key for key in keys if states.get(key) in TERMINAL} - set(monitor.reported)),
        "max_attempts_seen": max((int(row.get("Attempts") or 0) for row in rows.values()), default=0),
        "failed_by_code": dict(failed_codes.most_common()),
        "entra_token_calls": dict(chaos.entra_calls),
        "vault_reads": world.sandbox.vault.reads,
        "vault_writes": world.sandbox.vault.writes,
        "queue_send_retries": sender.queue_retries,
        "front_door_statuses": {str(k): v for k, v in sorted(sender.front_door_statuses.items())},
        "monitor_storage_errors": monitor.storage_errors,
        "jobs_finished_per_s": _throughput(rows, chaos),
        "token_refusal": _refusal_cost(world, chaos),
        "lever_failures": chaos.failures,
        "harness_failures": monitor.failures + sender.failures,
        "events": chaos.events,
    }
    return figures


WINDOWS = {
    "vault_outage": ("vault_outage_start", "vault_outage_end"),
    "entra_outage": ("entra_outage_start", "entra_outage_end"),
    "worker_down": ("worker_killed", "worker_restarted"),
    "azurite_down": ("azurite_stopping", "azurite_restarted"),
    "bc_outage": ("bc_outage_start", "bc_outage_end"),
}


def _throughput(rows: dict[str, dict[str, Any]], chaos: Chaos) -> dict[str, float]:
    """Jobs reaching a terminal state per second: over the whole run, and during each disruption."""
    finished = sorted(
        row["FinishedAt"] for row in rows.values() if isinstance(row.get("FinishedAt"), datetime)
    )
    if len(finished) < 2:
        return {}
    spans = {"overall": (finished[0], finished[-1])}
    spans.update(
        {
            name: (chaos.moments[start], chaos.moments[end])
            for name, (start, end) in WINDOWS.items()
            if start in chaos.moments and end in chaos.moments
        }
    )
    rates: dict[str, float] = {}
    for name, (start, end) in spans.items():
        seconds = max((end - start).total_seconds(), 0.001)
        rates[name] = round(sum(1 for moment in finished if start <= moment <= end) / seconds, 2)
    return rates


# The sender's line when BC accepts a token again after refusing one (shared/bc/sender.py, bc.token_recovered).
_RECOVERED = re.compile(
    r"BC accepted a token again (?P<seconds>[0-9.]+) s after it refused one: "
    r"(?P<requests>\d+) requests since, (?P<refused>\d+) of them refused"
)


def _refusal_cost(world: World, chaos: Chaos) -> dict[str, Any]:
    """What the last lever (BC refuses every token the workers hold) cost: BC requests, 401s and Key Vault reads
    from the lever to the end of the run, and per worker process what its sender logged from its first 401 to
    its first 2xx (issue 24, point 6: at most one request per in-flight slot, one vault read)."""
    if not chaos.at_refusal:
        return {}
    stats = world.sandbox.bc.stats()
    at = chaos.at_refusal
    recoveries = {
        path.name: [
            {
                key: float(value) if key == "seconds" else int(value)
                for key, value in found.groupdict().items()
            }
            for found in _RECOVERED.finditer(path.read_text(encoding="utf-8", errors="replace"))
        ]
        for path in _logs(world)
    }
    return {
        "bc_requests_since": stats.count() - at["bc_requests"],
        "bc_401_since": stats.count(401) - at["bc_401"],
        "vault_reads_since": world.sandbox.vault.reads - at["vault_reads"],
        "recoveries_by_log": {name: found for name, found in recoveries.items() if found},
    }


def _by_status(requests: dict[str, dict[int, int]]) -> Counter[int]:
    total: Counter[int] = Counter()
    for statuses in requests.values():
        total.update(statuses)
    return total


def _effects(
    world: World, by_key: dict[str, Planned], states: dict[str, str], rows: dict[str, dict[str, Any]]
) -> dict[str, int]:
    """Checked against the sandbox's own records: each marker written at most once, and where the job
    succeeded, there; deleted targets gone, posted invoices posted, updates applied; injection found nothing."""
    bc = world.sandbox.bc
    names: Counter[str] = Counter()
    for entity_set in ("customers", "items"):
        names.update(str(row.get("displayName")) for row in bc.records(entity_set))
    invoices = bc.records("salesInvoices")
    names.update(str(row.get("externalDocumentNumber")) for row in invoices)
    by_id = {str(row["id"]): row for entity_set in ("customers", "vendors") for row in bc.records(entity_set)}
    by_id.update({str(row["id"]): row for row in invoices})
    duplicates = missing = leaks = applied = 0
    for key, planned in by_key.items():
        succeeded = states.get(key) == JobState.SUCCEEDED.value
        for marker in planned.markers:
            duplicates += max(0, names[marker] - 1)
            if succeeded and names[marker] == 0:
                missing += 1
        if _ambiguous_failure(rows.get(key)) and any(names[marker] for marker in planned.markers):
            applied += 1
        if succeeded and planned.target is not None:
            target = by_id.get(planned.target)
            if planned.kind == "delete" and target is not None:
                missing += 1
            if planned.kind == "action" and (target is None or target.get("status") == "Draft"):
                missing += 1
        if succeeded and planned.injection:
            result = json.loads(rows[key].get("Result") or "{}")
            leaks += 1 if result.get("count") else 0
    return {
        "duplicate_records": duplicates,
        "missing_effects": missing,
        "injection_leaks": leaks,
        "ambiguous_failures_applied": applied,
    }


def _ambiguous_failure(row: dict[str, Any] | None) -> bool:
    if row is None or row.get("State") != JobState.FAILED.value or not row.get("Error"):
        return False
    return bool(json.loads(row["Error"]).get("code") == "ambiguous_write")


# -- evidence --------------------------------------------------------------------------------------------------


def _read_routes(world: World, monitor: Monitor) -> list[str]:
    """The app's read routes as an operator would call them: status of a sample of jobs, every page of the
    list, the auth status."""
    texts: list[str] = []
    workers = world.live_workers()
    if not workers:
        return texts
    base, key = workers[0].base_url, {"code": world.function_key}
    states = monitor.states()
    others = sorted(job_id for job_id, state in states.items() if state != JobState.SUCCEEDED.value)
    succeeded = sorted(job_id for job_id, state in states.items() if state == JobState.SUCCEEDED.value)
    sample = others + random.Random(0).sample(succeeded, min(STATUS_SAMPLE, len(succeeded)))  # noqa: S311
    with httpx.Client(timeout=30) as client:
        texts += [client.get(f"{base}/api/jobs/{job_id}", params=key).text for job_id in sample]
        page: httpx.URL | None = httpx.URL(f"{base}/api/jobs", params={**key, "pageSize": "1000"})
        for _ in range(1000):  # a nextLink that never ends would be a finding, not a hang
            if page is None:
                break
            answer = client.get(page)
            texts.append(answer.text)
            link = answer.json().get("nextLink") if answer.status_code == 200 else None
            # nextLink carries the query (never the key): the key is added to it, the rest kept as it is.
            page = httpx.URL(link).copy_add_param("code", world.function_key) if link else None
        texts.append(client.get(f"{base}/api/auth/status", params=key).text)
    return texts


def _table_rows(world: World) -> list[str]:
    try:
        return [json.dumps({"table": name, **row}, default=str) for name, row in world.every_table_row()]
    except AzureError as exc:
        logger.error("could not read the tables for the sweep: %s", type(exc).__name__)
        return []


def _queue_texts(world: World) -> list[str]:
    """Every message left on the app's queues (received without deleting, so nothing is consumed)."""
    texts: list[str] = []
    for name in (JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE):
        with world.queue(name) as queue:
            try:
                texts += [
                    m.content for m in queue.receive_messages(messages_per_page=32, visibility_timeout=60)
                ]
            except AzureError:
                continue
    return texts


def _secrets(world: World, signed_in: SignIn, monitor: Monitor) -> dict[str, str]:
    secrets = {"the BC client secret": world.sandbox.env["BC_CLIENT_SECRET"]}
    secrets["the sign-in's authorization code"] = signed_in.code
    secrets["the sign-in's PKCE verifier"] = signed_in.verifier
    secrets.update(token_secrets(monitor.token_sets))
    return secrets

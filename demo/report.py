"""The demo's figures: counted from the jobs Table, the sandbox's counters and the storage proxies; shown as a
summary table and as one JSON line (the last line of the demo's output)."""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from bcjobs import JobState
from bcjobs.rows import report_from_row
from demo.context import DemoContext
from demo.progress import delta, statuses, token_calls
from localworld.proxy import split_calls

FINAL_KEYS = (
    "jobs",
    "succeeded",
    "failed",
    "rejected",
    "expired",
    "dead_lettered",
    "non_terminal",
)


def quantile(values: list[float], share: float) -> float | None:
    """Nearest-rank quantile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def collect(context: DemoContext) -> dict[str, Any]:
    """Every figure of the run (jobs since discovery began; counters as differences over the same span)."""
    reports = [report_from_row(row) for row in context.rows.values()]
    states = Counter(report.state.value for report in reports)
    expected = set(context.sent_at) | (set(context.workload.kinds) if context.workload else set())
    missing = {job_id for job_id in expected if not job_id.startswith("msg-")} - set(context.rows)
    before, after = context.stats_before, context.stats_after
    bc = delta(statuses(after), statuses(before))
    faults = delta(
        Counter(after.get("bc", {}).get("faults_injected", {})),
        Counter(before.get("bc", {}).get("faults_injected", {})),
    )
    grants = delta(token_calls(after), token_calls(before))
    vault_after, vault_before = after.get("vault", {}), before.get("vault", {})
    latencies = [
        (report.finished_at - context.sent_at[report.job_id]).total_seconds()
        for report in reports
        if report.finished_at is not None and report.job_id in context.sent_at
    ]
    failures = Counter(
        report.error.code
        for report in reports
        if report.state is JobState.FAILED and report.error is not None
    )
    jobs = len(reports)
    figures: dict[str, Any] = {
        "jobs": jobs,
        "succeeded": states[JobState.SUCCEEDED.value],
        "failed": states[JobState.FAILED.value],
        "rejected": states[JobState.REJECTED.value],
        "expired": states[JobState.EXPIRED.value],
        "dead_lettered": states[JobState.DEAD_LETTERED.value],
        "non_terminal": sum(n for state, n in states.items() if not JobState(state).terminal) + len(missing),
        "failures_by_code": dict(failures),
        "reconciled": sum(1 for r in reports if r.result is not None and r.result.reconciled),
        "resent_job_ids": len(context.workload.resent) if context.workload else 0,
        "invalid_messages": len(context.workload.invalid) if context.workload else 0,
        "bc_requests": sum(bc.values()),
        "bc_requests_by_status": dict(sorted(bc.items())),
        "throttled": bc["429"],
        "faults_injected": dict(sorted(faults.items())),
        "latency_p50_seconds": _round(quantile(latencies, 0.5)),
        "latency_p95_seconds": _round(quantile(latencies, 0.95)),
        "token_endpoint_calls": dict(sorted(grants.items())),
        "token_refreshes": grants["refresh_token"] + grants["client_credentials"],
        "key_vault_reads": int(vault_after.get("reads", 0)) - int(vault_before.get("reads", 0)),
        "key_vault_writes": int(vault_after.get("writes", 0)) - int(vault_before.get("writes", 0)),
    }
    if context.proxies is not None and jobs:
        calls = split_calls(context.proxies[0].snapshot(), context.proxies[1].snapshot())
        figures |= {
            "storage_calls_per_job": round(calls.total / jobs, 2),
            "product_storage_calls_per_job": round(calls.product / jobs, 2),
            "host_storage_calls_per_job": round(calls.host / jobs, 2),
            "throttle_storage_calls_per_job": round(calls.throttle / jobs, 3),
        }
    figures |= {
        "mode": context.options.mode,
        "workers": context.options.workers,
        "run_seconds": round(context.run_seconds, 1),
    }
    return figures


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def summary_table(figures: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    table = Table(title="make demo: summary", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", overflow="fold")
    failed = ", ".join(f"{code} x{n}" for code, n in figures.get("failures_by_code", {}).items())
    rows: list[tuple[str, str]] = [
        ("jobs (rows in the jobs Table)", str(figures.get("jobs"))),
        (
            "  by state",
            f"succeeded {figures.get('succeeded')}, failed {figures.get('failed')}"
            + (f" ({failed})" if failed else "")
            + f", rejected {figures.get('rejected')}, expired {figures.get('expired')}, "
            f"dead-lettered {figures.get('dead_lettered')}, not final {figures.get('non_terminal')}",
        ),
        (
            "  sent twice / invalid messages",
            f"{figures.get('resent_job_ids')} / {figures.get('invalid_messages')}",
        ),
        ("  reconciled after a lost answer", str(figures.get("reconciled"))),
        ("BC requests", str(figures.get("bc_requests"))),
        (
            "  by status (0 = dropped)",
            ", ".join(f"{status}: {n}" for status, n in figures.get("bc_requests_by_status", {}).items()),
        ),
        ("  429s", str(figures.get("throttled"))),
        ("  faults injected", ", ".join(f"{k}: {v}" for k, v in figures.get("faults_injected", {}).items())),
        (
            "job latency p50 / p95 (sent → final)",
            f"{figures.get('latency_p50_seconds')} s / {figures.get('latency_p95_seconds')} s",
        ),
        (
            "token refreshes (token-endpoint calls)",
            f"{figures.get('token_refreshes')} ({_pairs(figures.get('token_endpoint_calls', {}))})",
        ),
        ("Key Vault reads / writes", f"{figures.get('key_vault_reads')} / {figures.get('key_vault_writes')}"),
    ]
    if "storage_calls_per_job" in figures:
        rows.append(
            (
                "storage calls per job",
                f"{figures['storage_calls_per_job']} (product {figures['product_storage_calls_per_job']}, "
                f"host trigger {figures['host_storage_calls_per_job']}, "
                f"throttle {figures['throttle_storage_calls_per_job']})",
            )
        )
    rows += [
        (f"connection {name}", f"jobs {counts['jobs']}, succeeded {counts['succeeded']}")
        for name, counts in figures.get("connections", {}).items()
    ]
    if "feed_events" in figures:
        rows.append(("change feed (bc-changes)", _feed(figures)))
    rows += [
        ("duplicates in BC", str(figures.get("duplicates_in_bc", "not checked"))),
        (
            "workers / mode / run time",
            f"{figures.get('workers')} / {figures.get('mode')} / {figures.get('run_seconds')} s",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None, force_terminal=False).print(table)
    return buffer.getvalue().rstrip()


def _feed(figures: dict[str, Any]) -> str:
    origins = ", ".join(f"{k} {v}" for k, v in figures.get("feed_events_by_origin", {}).items())
    return (
        f"{figures['feed_events']} events ({origins}), {figures.get('feed_echoes')} echoes, "
        f"{figures.get('feed_bc_user_edits')} BC-user edits each once; BC write -> event p50 "
        f"{figures.get('feed_latency_p50_seconds')} s / p95 {figures.get('feed_latency_p95_seconds')} s "
        f"(debounce {figures.get('feed_debounce_seconds')} s included)"
    )


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in values.items()) or "none"


def json_line(figures: dict[str, Any]) -> str:
    """One line of JSON, `jobs` .. `non_terminal` first."""
    first = {key: figures[key] for key in FINAL_KEYS if key in figures}
    return json.dumps({**first, **{k: v for k, v in figures.items() if k not in first}})

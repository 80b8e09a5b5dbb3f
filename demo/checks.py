"""The demo checks its own outcome: against BC itself (every created record exists once, updates landed, posted
invoices are posted) and against everything it kept (no secret in the logs, rows or result messages).

BC is read over its API with the sandbox's app registration (client credentials): an independent look, not
through the product. Natural keys make every record the run created findable, so a duplicate from a redelivery,
a resend or the ambiguous write shows up as a key found twice, and a record no job accounts for as an excess
in the entity set's total.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections import Counter
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from bcjobs import RESULTS_QUEUE, JobReport, JobState
from bcjobs.rows import report_from_row
from demo.context import DemoContext, DemoError
from demo.main_run import TABLE_PREFIX
from demo.workload import Expectation
from localworld.bc import BcReader

ENTITY_SETS = ("customers", "items", "vendors", "salesOrders", "salesInvoices")
JWT = re.compile(r"eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}")
# The sandbox's refresh tokens ("0.A…") and authorization codes ("1.A…"), shaped like Entra's.
ENTRA_CODE = re.compile(r"\b[01]\.A[\w-]{80,}")


def every_created_record_exists_once(context: DemoContext) -> str:
    """Read BC: each natural key of the run found once (at most once for a failed job), no record unaccounted
    for, the fields of every succeeded update and upsert in place, every succeeded posting posted."""
    if context.workload is None or context.company is None:
        raise DemoError("the workload did not run")
    with BcReader(context.sandbox_env) as bc:
        records = {entity_set: bc.records(entity_set) for entity_set in ENTITY_SETS}
    reports = {job_id: report_from_row(row) for job_id, row in context.rows.items()}
    expectations = [*context.discovery_expectations, *context.workload.expectations]
    problems: list[str] = []
    duplicates = 0
    checked = Counter[str]()
    for expectation in expectations:
        found = [
            r for r in records[expectation.entity_set] if str(r.get(expectation.field)) == expectation.value
        ]
        must_exist = _succeeded(reports.get(expectation.job_id), expectation)
        duplicates += max(0, len(found) - 1)
        if len(found) > 1:
            problems.append(
                f"{expectation.entity_set} {expectation.field}={expectation.value} is in BC {len(found)} times"
            )
        elif must_exist and not found:
            problems.append(
                f"{expectation.job_id} succeeded but {expectation.entity_set} {expectation.value} is missing"
            )
        elif must_exist and expectation.values and not _holds(found[0], expectation.values):
            problems.append(
                f"{expectation.job_id} succeeded but {expectation.value} does not hold {expectation.values}"
            )
        checked[expectation.entity_set] += 1
    unaccounted = _unaccounted(context, records, expectations)
    duplicates += sum(unaccounted.values())
    problems += [
        f"{n} {entity_set} records no job accounts for" for entity_set, n in unaccounted.items() if n
    ]
    problems += _postings(context, reports, records["salesInvoices"])
    context.figures["duplicates_in_bc"] = duplicates
    if problems:
        context.problems += problems
        raise DemoError(
            "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
        )
    totals = ", ".join(f"{name} {len(rows)}" for name, rows in records.items())
    keys = ", ".join(f"{name} {n}" for name, n in checked.items())
    return f"natural keys checked: {keys}; totals in BC: {totals}; duplicates: 0"


def _succeeded(report: JobReport | None, expectation: Expectation) -> bool:
    if report is None or report.state is not JobState.SUCCEEDED:
        return False
    if expectation.batch_index is None:
        return True
    items = {item.index: item for item in (report.result.items or [])} if report.result else {}
    item = items.get(expectation.batch_index)
    return item is not None and item.error is None and item.status is not None and item.status < 300


def _holds(record: dict[str, Any], values: dict[str, Any]) -> bool:
    def same(a: Any, b: Any) -> bool:
        if isinstance(b, int | float) and isinstance(a, int | float):
            return abs(float(a) - float(b)) < 1e-6
        return bool(a == b)

    return all(same(record.get(name), value) for name, value in values.items())


def _unaccounted(
    context: DemoContext, records: dict[str, list[dict[str, Any]]], expectations: list[Expectation]
) -> dict[str, int]:
    """Per entity set: records beyond the seeded ones and the run's natural keys found (each counted once)."""
    seeded = context.stats_before.get("bc", {}).get("records", {})
    out: dict[str, int] = {}
    for entity_set, rows in records.items():
        keys = {(e.field, e.value) for e in expectations if e.entity_set == entity_set}
        new_keys = {(name, value) for name, value in keys if any(str(r.get(name)) == value for r in rows)}
        seeded_keys = {(name, value) for name, value in new_keys if not value.startswith("DEMO-")}
        explained = int(seeded.get(entity_set, 0)) + len(new_keys - seeded_keys)
        out[entity_set] = max(0, len(rows) - explained)
    return out


def _postings(
    context: DemoContext, reports: dict[str, JobReport], invoices: list[dict[str, Any]]
) -> list[str]:
    """A posting that succeeded left its invoice posted (status Open); posting twice is refused by BC anyway."""
    by_id = {str(invoice["id"]): invoice for invoice in invoices}
    problems = []
    for n, invoice_id in enumerate(context.company.invoices if context.company else []):
        report = reports.get(f"demo-invoice-post-{n + 1:03d}")
        invoice = by_id.get(invoice_id)
        if (
            report is not None
            and report.state is JobState.SUCCEEDED
            and (invoice is None or invoice["status"] != "Open")
        ):
            problems.append(f"{report.job_id} succeeded but invoice {invoice_id} is not posted")
    return problems


def logs_and_records_hold_no_secret(context: DemoContext) -> str:
    """Every worker's log, the sandbox-facing transcript, the jobs and audit rows and the result messages: no
    client secret, no JWT, no refresh token."""
    if context.workers is None or context.azurite is None:
        raise DemoError("the workers did not run")
    texts = {str(log.name): log.read_text(encoding="utf-8", errors="replace") for log in context.workers.logs}
    connection, options = context.azurite.connection_string, context.storage_options()
    for suffix in ("jobs", "jobaudit"):
        with (
            TableClient.from_connection_string(connection, f"{TABLE_PREFIX}{suffix}", **options) as table,
            contextlib.suppress(ResourceNotFoundError),
        ):
            texts[f"{TABLE_PREFIX}{suffix} rows"] = "\n".join(str(dict(row)) for row in table.list_entities())
    with QueueClient.from_connection_string(connection, RESULTS_QUEUE, **options) as queue:
        peeked = queue.peek_messages(max_messages=32)
        texts["bc-results messages"] = "\n".join(
            base64.b64decode(m.content).decode("utf-8", "replace") for m in peeked
        )
    secrets = {
        "the client secret": context.sandbox_env.get("BC_CLIENT_SECRET", ""),
        "the function key": context.workers.function_key,
    }
    leaks = [
        f"{what} in {where}"
        for where, text in texts.items()
        for what, found in (
            ("a JWT", bool(JWT.search(text))),
            ("a refresh token or authorization code", bool(ENTRA_CODE.search(text))),
            *((name, bool(value) and value in text) for name, value in secrets.items()),
        )
        if found
    ]
    if leaks:
        raise DemoError("secrets found: " + ", ".join(leaks))
    lines = sum(text.count("\n") for text in texts.values())
    return f"{len(texts)} sources, {lines} lines: no client secret, function key, JWT, refresh token or code"


MANAGED_IDENTITY_RESOURCES = {"https://storage.azure.com", "https://vault.azure.net"}
# Federated: the identity's token for the token exchange, the app registration's client assertion (reference (d)).
EXCHANGE_RESOURCE = "api://AzureADTokenExchange"


def the_workers_used_the_deployed_credentials(context: DemoContext) -> str:
    """Who reached Key Vault, and which tokens the managed-identity endpoint issued: S2S, only the site's managed
    identity (for storage and Key Vault, as infra deploys); delegated, the app registration with its secret."""
    if context.sandbox is None:
        raise DemoError("the sandbox is not running")
    stats = context.sandbox.stats()
    callers: dict[str, int] = stats.get("vault", {}).get("callers", {})
    tokens: dict[str, int] = stats.get("identity", {}).get("token_calls", {})
    env = context.sandbox_env
    seen = f"Key Vault callers {callers}, managed-identity tokens {tokens}"
    if context.options.mode == "s2s":
        return _managed_identity_only(context, callers, tokens, seen)
    if set(callers) - {env["BC_CLIENT_ID"]} or tokens:
        raise DemoError(f"expected the app registration only, no managed identity: {seen}")
    return f"Key Vault: {sum(callers.values())} requests as the app registration (client secret); no managed identity"


def _managed_identity_only(
    context: DemoContext, callers: dict[str, int], tokens: dict[str, int], seen: str
) -> str:
    """S2S: only the site's managed identity reached Key Vault and got tokens (federated: also the exchange token,
    and no client secret in the workers' settings or on the sandbox's app registration)."""
    identity = context.sandbox_env["SANDBOX_MANAGED_IDENTITY_CLIENT_ID"]
    federated = context.options.credential == "federated"
    expected = MANAGED_IDENTITY_RESOURCES | ({EXCHANGE_RESOURCE} if federated else set())
    if set(callers) != {identity} or set(tokens) != expected:
        raise DemoError(f"expected only the managed identity {identity} for {sorted(expected)}: {seen}")
    line = (
        f"Key Vault: {callers[identity]} requests, all as the managed identity {identity}; its endpoint "
        f"issued {tokens['https://storage.azure.com']} storage and {tokens['https://vault.azure.net']} Key Vault tokens"
    )
    if not federated:
        return line
    if context.app_environment.get("BC_CLIENT_SECRET") or "BC_CLIENT_SECRET" in context.sandbox_env:
        raise DemoError(
            "federated, yet a client secret is in the workers' settings or on the app registration"
        )
    return (
        f"{line} and {tokens[EXCHANGE_RESOURCE]} exchange token(s) for the federated credential; no client secret "
        "in the settings, Key Vault or the sandbox's app registration"
    )

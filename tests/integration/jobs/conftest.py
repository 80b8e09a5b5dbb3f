"""The job pipeline as an app sees it: function_app.py run by devhost, polling Azurite; BC, Entra and Key Vault
from the sandbox. Each test gets fresh queues (their names are fixed by the contract) and its own tables."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

import function_app
from bcjobs import JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE, JobReport, JobState
from bcjobs.rows import JOB_ROW, AuditedInteraction, partition_interactions, report_from_row
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.polling import wait_until
from sandbox import Sandbox
from shared.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]
# Retries and authorization re-checks in seconds, so tests see several attempts quickly.
FAST_POLICY = {
    "BC_JOB_BACKOFF_BASE_SECONDS": "0.2",
    "BC_JOB_BACKOFF_CAP_SECONDS": "1",
    "BC_JOB_AUTHORIZATION_RECHECK_SECONDS": "1",
    "BC_JOB_MAX_ATTEMPTS": "4",
}


def wire(value: Any) -> str:
    """A job as the queue's text: base64 of its JSON."""
    return base64.b64encode(json.dumps(value).encode("utf-8")).decode("ascii")


@dataclass
class JobsWorld:
    """The queues and tables of one test, and the app's HTTP base URL once devhost runs."""

    connection_string: str
    prefix: str
    function_key: str
    connection: str = "default"
    base_url: str = ""

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.connection_string, name)

    def table(self, suffix: str) -> TableClient:
        return TableClient.from_connection_string(self.connection_string, f"{self.prefix}{suffix}")

    def send(self, job: Any, *, raw: str | None = None, delay: int = 0) -> str:
        """Put a job (or raw text) on bc-jobs; the message id."""
        with self.queue(JOBS_QUEUE) as queue:
            return str(queue.send_message(raw if raw is not None else wire(job), visibility_timeout=delay).id)

    def row(self, job_id: str) -> dict[str, Any] | None:
        with self.table("jobs") as table:
            try:
                return dict(table.get_entity(job_id, JOB_ROW))
            except ResourceNotFoundError:
                return None

    def rows(self) -> list[dict[str, Any]]:
        """Every job row (a job's audit rows share its partition: RowKey other than `job`)."""
        with self.table("jobs") as table:
            try:
                found = table.query_entities("RowKey eq @row", parameters={"row": JOB_ROW})
                return [dict(entity) for entity in found]
            except ResourceNotFoundError:
                return []

    def report(self, job_id: str) -> JobReport | None:
        row = self.row(job_id)
        return None if row is None else report_from_row(row)

    def wait_for(self, job_id: str, *, timeout: float = 30.0) -> JobReport:
        """The job's report once it is terminal."""
        wait_until(lambda: _terminal(self.report(job_id)), timeout=timeout, what=f"job {job_id} to finish")
        report = self.report(job_id)
        assert report is not None
        return report

    def wait_all(self, count: int, *, timeout: float = 60.0) -> list[JobReport]:
        """Every job row once `count` of them are terminal."""
        wait_until(
            lambda: sum(1 for row in self.rows() if JobState(row["State"]).terminal) >= count,
            timeout=timeout,
            what=f"{count} jobs to finish",
        )
        return [report_from_row(row) for row in self.rows()]

    def results(self, count: int, *, timeout: float = 30.0) -> list[JobReport]:
        """Everything on bc-results (received and deleted) once at least `count` reports have come: a job's report
        is sent after its row is written, so a terminal row does not mean its report is on the queue yet."""
        found: list[JobReport] = []

        def arrived() -> bool:
            with self.queue(RESULTS_QUEUE) as queue:
                for message in queue.receive_messages(messages_per_page=32, visibility_timeout=60):
                    found.append(JobReport.model_validate_json(base64.b64decode(message.content)))
                    queue.delete_message(message)
            return len(found) >= count

        wait_until(arrived, timeout=timeout, what=f"{count} reports on {RESULTS_QUEUE}")
        return found

    def queue_length(self, name: str) -> int:
        with self.queue(name) as queue:
            return int(queue.get_queue_properties().approximate_message_count or 0)

    def in_flight(self) -> bool:
        """True while a job row is running (a delivery holds its claim)."""
        return any(row["State"] == JobState.RUNNING.value for row in self.rows())

    def interactions(self, job_id: str) -> list[AuditedInteraction]:
        """The job's audit as the contract reads it: its row's Audit column and the audit rows of its partition."""
        with self.table("jobs") as table:
            try:
                rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": job_id})
                return partition_interactions(dict(row) for row in rows)
            except ResourceNotFoundError:
                return []

    def everything_kept(self) -> list[str]:
        """Every job row, audit row and results-queue message (peeked), and every job's status response."""
        texts = []
        for suffix in ("jobs", "jobaudit"):  # job and audit rows; the audit table of earlier versions
            with self.table(suffix) as table, contextlib.suppress(ResourceNotFoundError):
                texts += [json.dumps(dict(row), default=str) for row in table.list_entities()]
        with self.queue(RESULTS_QUEUE) as queue:
            texts += [base64.b64decode(m.content).decode() for m in queue.peek_messages(max_messages=32)]
        texts += [self.get(f"/api/jobs/{row['PartitionKey']}").text for row in self.rows()]
        return texts

    def get(self, path: str, *, key: bool = True) -> httpx.Response:
        params = {"code": self.function_key} if key else {}
        return httpx.get(f"{self.base_url}{path}", params=params, timeout=10)


JWT = re.compile(r"eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}")


def leaked(texts: list[str], secrets: set[str]) -> list[str]:
    """Which kinds of secret appear anywhere (names only: a failing assertion must not print a secret)."""
    found = ["a JWT"] if any(JWT.search(text) for text in texts) else []
    return found + [
        f"secret #{n}" for n, secret in enumerate(sorted(secrets)) if any(secret in t for t in texts)
    ]


def _terminal(report: JobReport | None) -> bool:
    return report is not None and report.state.terminal


@pytest.fixture
def jobs_env(sandbox_env: dict[str, str], azurite_connection_string: str) -> dict[str, str]:
    """Client-credentials connection on the sandbox, this test's own tables, a fast retry policy."""
    suffix = uuid.uuid4().hex[:10]
    return {
        **sandbox_env,
        **FAST_POLICY,
        "JobsStorage": azurite_connection_string,
        "BC_TABLE_PREFIX": f"j{suffix}",
        "BC_CONNECTION_NAME": f"c{suffix}",
        "BC_AUTH_MODE": "client_credentials",
        "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
        "DEVHOST_FUNCTION_KEY": secrets.token_urlsafe(16),
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(16),
    }


@pytest.fixture
def world(jobs_env: dict[str, str]) -> JobsWorld:
    """Fresh bc-jobs, bc-jobs-poison and bc-results queues (deleted with whatever an earlier test left)."""
    built = JobsWorld(
        jobs_env["JobsStorage"],
        jobs_env["BC_TABLE_PREFIX"],
        jobs_env["DEVHOST_FUNCTION_KEY"],
        jobs_env["BC_CONNECTION_NAME"],
    )
    for name in (JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE):
        with built.queue(name) as queue:
            with contextlib.suppress(ResourceNotFoundError):
                queue.delete_queue()
            queue.create_queue()
    return built


@pytest.fixture
def pipeline(world: JobsWorld, jobs_env: dict[str, str], sandbox: Sandbox) -> Iterator[JobsWorld]:
    """function_app.py under devhost (in-process), with the repo's host.json."""
    get_settings.cache_clear()
    host = DevHost(
        function_app.app,
        jobs_env,
        host_config=load_host_config(ROOT / "host.json"),
        shutdown_grace=10,
    )
    host.start()
    world.base_url = host.base_url
    try:
        yield world
    finally:
        host.stop()
        get_settings.cache_clear()

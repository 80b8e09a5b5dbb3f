"""The status page's HTML for every connection state: strict CSP, no script or external asset, escaped values.

The full page of one representative snapshot is kept in golden/status_page.html (a reviewer sees every change
of the markup in the diff). After a deliberate change: UPDATE_GOLDEN=1 pytest tests/unit/telemetry/test_status_page.py
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from shared.auth import ConnectionStatus, Health
from shared.ops.page import CONTENT_SECURITY_POLICY, PAGE_HEADERS, STYLE, Target, render, sign_in_needed
from shared.ops.snapshot import Failure, JobCounts, QueueReading, Snapshot, ThrottleUsage
from shared.tokens import AuthMode
from testkit.clock import START

GOLDEN = Path(__file__).parent / "golden" / "status_page.html"

OK = ConnectionStatus(
    connection="default",
    mode=AuthMode.DELEGATED,
    health=Health.OK,
    has_token=True,
    expires_on=START + timedelta(minutes=42),
    account="integration@contoso.example",
    tenant_id="6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f",
    generation=7,
    last_refresh_at=START - timedelta(minutes=18),
    last_error_code=None,
    last_error_message=None,
    last_error_at=None,
    backoff_until=None,
    next_step=None,
)
STATES = {
    "ok": OK,
    "degraded": replace(
        OK,
        health=Health.DEGRADED,
        last_error_code="TokenRefreshFailedError",
        last_error_message="Entra answered 503",
        last_error_at=START - timedelta(minutes=1),
        backoff_until=START + timedelta(seconds=20),
        next_step="none yet: the app retries by itself",
    ),
    "not_authorized": replace(
        OK,
        health=Health.NOT_AUTHORIZED,
        has_token=False,
        expires_on=None,
        account=None,
        tenant_id=None,
        generation=None,
        last_refresh_at=None,
        next_step="open /api/auth/login (function key) and sign in as the BC integration user",
    ),
    "reauthorization_required": replace(
        OK,
        health=Health.REAUTHORIZATION_REQUIRED,
        has_token=False,
        expires_on=START - timedelta(minutes=5),
        last_error_code="invalid_grant/AADSTS700082",
        last_error_message="the refresh token has expired",
        last_error_at=START - timedelta(hours=2),
        next_step="open /api/auth/login (function key) and sign in again as the BC integration user",
    ),
    "credentials_rejected": replace(
        OK,
        mode=AuthMode.CLIENT_CREDENTIALS,
        account=None,
        health=Health.CREDENTIALS_REJECTED,
        last_error_code="invalid_client/AADSTS7000215",
        last_error_message="invalid client secret",
        last_error_at=START - timedelta(minutes=3),
        next_step="fix the app registration's secret/certificate or consent, then POST /api/auth/refresh",
    ),
}
FAILURE = Failure(
    job_id="crm-customer-C-1001",
    state="failed",
    operation="create customers",
    finished_at=START - timedelta(minutes=7),
    code="bc_validation",
    bc_code="Internal_ValidationFailed",
    status=400,
    client_request_id="1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    bc_request_id="d5e1f0a2-4b7c-4f0e-9a3e-2c1d0b9a8f7e",
    message="Customer No. C-1001 already exists.",
)


def snapshot(status: ConnectionStatus | None = OK, **changes: object) -> Snapshot:
    base = Snapshot(
        generated_at=START,
        connection=status,
        jobs=JobCounts(
            hour={"succeeded": 41, "retry_scheduled": 2, "failed": 1},
            day={"succeeded": 812, "retry_scheduled": 2, "failed": 9, "dead_lettered": 1},
        ),
        failures=[FAILURE],
        queues=[QueueReading("bc-jobs", 3, 14.0), QueueReading("bc-jobs-poison", 0, None)],
        throttle=ThrottleUsage(
            requests=6000,
            window_seconds=300.0,
            safety_margin=0.05,
            max_in_flight=5,
            members=2,
            paused_until=None,
            sent_here=318,
            throttled_here=0,
        ),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class Structure(HTMLParser):
    """Collects tags, attributes and checks that every element is closed in order."""

    VOID: ClassVar[set[str]] = {"meta", "br", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


def parse(page: str) -> Structure:
    parsed = Structure()
    parsed.feed(page)
    parsed.close()
    assert parsed.errors == []
    assert parsed.stack == []
    return parsed


@pytest.mark.parametrize("state", sorted(STATES))
def test_the_page_renders_each_connection_state(state: str) -> None:
    """Well-formed HTML naming the state, the mode and the next step; no script, no external reference."""
    status = STATES[state]
    page = render(snapshot(status))
    structure = parse(page)
    assert f">{state}</span>" in page
    assert status.next_step is None or status.next_step in page.replace("&#x27;", "'")
    assert all(tag not in {"script", "link", "img", "iframe", "object"} for tag, _ in structure.tags)
    assert "http://" not in page  # no external asset (and no absolute link)
    assert "https://" not in page


@pytest.mark.parametrize("state", sorted(STATES))
def test_the_sign_in_form_appears_only_when_a_sign_in_would_help(state: str) -> None:
    """Delegated mode, nobody signed in or the grant died: a form that asks for a host key and sends it to
    /api/auth/login; the page itself carries no key and no link."""
    status = STATES[state]
    tags = parse(render(snapshot(status))).tags
    forms = [attrs for tag, attrs in tags if tag == "form"]
    inputs = [attrs for tag, attrs in tags if tag == "input"]
    assert [attrs.get("href") for tag, attrs in tags if tag == "a"] == []
    if sign_in_needed(status):
        assert [(f.get("method"), f.get("action")) for f in forms] == [("get", "/api/auth/login")]
        assert [(i.get("name"), i.get("type"), i.get("value")) for i in inputs] == [
            ("code", "password", None)
        ]
    else:
        assert forms == inputs == []
    assert state not in {"not_authorized", "reauthorization_required"} or forms


def test_the_sign_in_form_names_the_key_it_needs() -> None:
    """The page tells the admin that a host key (functionKeys.default) is needed, not a key for this page."""
    page = render(snapshot(STATES["not_authorized"]))
    assert "needs a host key, valid for every function" in page
    assert "--query functionKeys.default" in page
    assert "a key made only for this page is refused there" in page


def test_client_credentials_never_sends_the_admin_to_sign_in() -> None:
    """An app-only connection cannot be fixed by a sign-in: the next step says what to fix instead."""
    status = replace(STATES["not_authorized"], mode=AuthMode.CLIENT_CREDENTIALS)
    assert "auth/login'" not in render(snapshot(status))


def test_the_csp_allows_exactly_the_inline_style() -> None:
    """default-src 'none' with the style's hash: nothing else may load, run or frame the page; a form may only
    go to this site (the sign-in form)."""
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none'; ")
    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "form-action 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    page = render(snapshot())
    styles = re.findall(r"<style>(.*?)</style>", page, flags=re.S)
    assert styles == [STYLE]
    assert " style=" not in page  # inline style attributes would need 'unsafe-inline'
    assert PAGE_HEADERS["Cache-Control"] == "no-store"
    assert PAGE_HEADERS["Referrer-Policy"] == "no-referrer"


def test_every_value_from_outside_is_escaped() -> None:
    """A job id, BC message or account holding markup shows as text."""
    hostile = "<script>alert(1)</script>"
    status = replace(OK, account=hostile, last_error_code="x", last_error_message=hostile)
    failure = replace(FAILURE, job_id=hostile, message=hostile, bc_code=hostile)
    page = render(snapshot(status, failures=[failure]))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    parse(page)


def test_sections_whose_source_failed_say_so_and_the_rest_still_shows() -> None:
    """Storage or Key Vault down: the page still answers with what it could read."""
    broken = snapshot(
        None,
        jobs=None,
        failures=[],
        queues=[QueueReading("bc-jobs", 0, None)],
        problems={
            "connection": "could not be read (TokenStoreUnavailableError); the app's log has the details",
            "jobs": "could not be read (JobStoreError); the app's log has the details",
            "queue bc-jobs-poison": "could not be read (ServiceRequestError); the app's log has the details",
        },
    )
    page = render(broken)
    parse(page)
    assert "Connection: could not be read (TokenStoreUnavailableError)" in page
    assert "Jobs: could not be read (JobStoreError)" in page
    assert "Queue bc-jobs-poison: could not be read" in page
    assert "Not available (the jobs table could not be read)" in page
    assert "BC throttle" in page


def test_a_waiting_poison_queue_and_a_pause_are_pointed_out() -> None:
    """Messages in poison and a shared BC pause are the two figures an admin must not miss."""
    page = render(
        snapshot(
            queues=[QueueReading("bc-jobs", 0, None), QueueReading("bc-jobs-poison", 2, 300.0)],
            throttle=replace(snapshot().throttle, paused_until=START + timedelta(seconds=30)),  # type: ignore[type-var]
        )
    )
    assert "Messages are waiting in the poison queue" in page
    assert "until 2026-01-05 08:00:30 UTC (BC&#x27;s Retry-After)" in page


def test_no_job_in_the_last_day_reads_plainly() -> None:
    """An idle integration shows a sentence, not an empty table."""
    page = render(snapshot(jobs=JobCounts({}, {}), failures=[]))
    assert "No job was received or changed in the last day." in page
    assert "No job failed in the last day." in page


def test_the_page_matches_the_kept_html() -> None:
    """The whole markup of a representative page (healthy delegated connection, jobs, one failure)."""
    page = render(snapshot(), Target("production", "CRONUS USA, Inc."))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(page + "\n", encoding="utf-8")
    assert page + "\n" == GOLDEN.read_text(encoding="utf-8")


def test_the_page_names_the_environment_and_company_the_jobs_go_to() -> None:
    """Environment and company come from the settings; without a company, the environment's only one is used."""
    page = render(snapshot(), Target("sandbox-eu", None))
    assert "<dt>Environment</dt><dd>sandbox-eu</dd>" in page
    assert "<dt>Company</dt><dd>the environment&#x27;s only company</dd>" in page


def test_a_dead_refresh_token_with_a_valid_cached_token_says_jobs_still_run_until_it_expires() -> None:
    """reauthorization_required with an access token that still lives: jobs go on until it expires, then wait."""
    status = replace(STATES["reauthorization_required"], expires_on=START + timedelta(minutes=40))
    page = render(snapshot(status))
    assert "still served by the cached access token until it expires" in page
    assert "wait, without failing" in page
    assert "cached access token" not in render(snapshot(STATES["reauthorization_required"]))

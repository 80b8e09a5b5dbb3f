"""An admin must act ≠ a failure: jobs wait while the connection needs a sign-in and finish once it happens."""

from __future__ import annotations

import html
import json
import re
import ssl
from collections.abc import Iterator

import httpx
import pytest

import function_app
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.polling import wait_until
from localworld.ports import free_port
from sandbox import Sandbox
from shared.settings import get_settings
from tests.integration.jobs.conftest import ROOT, JobsWorld, leaked


@pytest.fixture
def delegated(world: JobsWorld, jobs_env: dict[str, str], sandbox: Sandbox) -> Iterator[JobsWorld]:
    """The app under devhost on a fixed port, in delegated mode, with its callback registered."""
    port = free_port()
    settings = {
        **jobs_env,
        "BC_AUTH_MODE": "delegated",
        "BC_REDIRECT_URI": f"http://127.0.0.1:{port}/api/auth/callback",
    }
    get_settings.cache_clear()
    host = DevHost(
        function_app.app,
        settings,
        host_config=load_host_config(ROOT / "host.json"),
        port=port,
        shutdown_grace=10,
    )
    host.start()
    world.base_url = host.base_url
    try:
        yield world
    finally:
        host.stop()
        get_settings.cache_clear()


def sign_in(world: JobsWorld, sandbox: Sandbox, codes: set[str] | None = None) -> None:
    """The admin's browser: /api/auth/login → the sandbox's sign-in → form post to /api/auth/callback."""
    login = httpx.get(f"{world.base_url}/api/auth/login", params={"code": world.function_key})
    assert login.status_code == 302
    tls = ssl.create_default_context(cafile=str(sandbox.ca_bundle))
    page = httpx.get(login.headers["Location"], verify=tls)
    fields = {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)
    }
    if codes is not None:
        codes.add(fields["code"])
    callback = httpx.post(f"{world.base_url}/api/auth/callback", data=fields)
    assert callback.status_code == 200


def test_jobs_wait_for_a_new_sign_in_and_then_complete(delegated: JobsWorld, sandbox: Sandbox) -> None:
    """The refresh token is revoked and BC's token dies: jobs park without using attempts, then finish."""
    sandbox.entra.token_lifetime_seconds = 3600
    assert delegated.get("/api/auth/status").status_code == 200  # the app's own Key Vault token: an hour
    sandbox.entra.token_lifetime_seconds = 400  # the admin's BC token: 400 s
    sign_in(delegated, sandbox)
    # jobs_process runs in its own worker process (its own group, as on Flex): its Key Vault token comes
    # with its first job, and must outlive the clock jump below too.
    sandbox.entra.token_lifetime_seconds = 3600
    item = sandbox.bc.records("items")[0]["id"]
    delegated.send({"jobId": "before", "operation": "get", "entitySet": "items", "id": item})
    assert delegated.wait_for("before").state == "succeeded"

    sandbox.entra.revoke_refresh_tokens()
    sandbox.clock.advance(500)  # BC's token is dead at BC (the Key Vault one is not); its refresh token too
    for job_id in ("waits-1", "waits-2"):
        delegated.send({"jobId": job_id, "operation": "get", "entitySet": "items", "id": item})
    wait_until(
        lambda: all(is_parked(delegated, job_id) for job_id in ("waits-1", "waits-2")),
        timeout=30,
        what="both jobs to wait for an admin",
    )
    parked = delegated.report("waits-1")
    assert parked is not None
    assert parked.attempts == 0
    assert parked.error is not None
    assert parked.error.code == "authorization_required"

    codes: set[str] = set()
    sign_in(delegated, sandbox, codes)
    for job_id in ("waits-1", "waits-2"):
        report = delegated.wait_for(job_id, timeout=60)
        assert (report.state, report.attempts) == ("succeeded", 1), report.error
    stored = json.loads(sandbox.vault.peek(f"bc-token-{delegated.connection}") or "{}")
    secrets = {sandbox.env["BC_CLIENT_SECRET"], stored["access_token"], stored["refresh_token"], *codes}
    assert leaked(delegated.everything_kept(), secrets) == []


def is_parked(world: JobsWorld, job_id: str) -> bool:
    report = world.report(job_id)
    return report is not None and report.state == "waiting_for_authorization"


def test_the_leak_check_finds_a_token_and_a_secret() -> None:
    """The check above can fail: a JWT or a known secret anywhere is reported (by kind, never by value)."""
    token = "eyJ" + "a" * 20 + "." + "b" * 20 + "." + "c" * 20
    assert leaked([f"x {token} y"], set()) == ["a JWT"]
    assert leaked(["...s3cr3t..."], {"s3cr3t"}) == ["secret #0"]

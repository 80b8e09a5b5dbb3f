"""3 processes x 20 concurrent token() callers with a token about to expire: exactly one refresh reaches Entra."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import ssl
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.data.tables.aio import TableClient

from sandbox import Sandbox
from shared.auth.compose import AuthServices
from shared.settings import Settings
from tests.integration.auth.conftest import Audit, sign_in_via_sandbox, stored_token_set

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PROCESSES = 3
CALLERS = 20
DEADLINE_SECONDS = 60


async def _line(process: asyncio.subprocess.Process, deadline: float) -> str:
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), timeout=max(0.1, deadline - time.monotonic()))
    return raw.decode().strip()


async def test_three_processes_with_twenty_callers_each_cause_exactly_one_refresh(
    services: AuthServices,
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    auth_env: dict[str, str],
    auth_table: TableClient,
    audit: Audit,
) -> None:
    """All 60 callers get the same new token; the sandbox token endpoint sees one refresh_token grant."""
    await sign_in_via_sandbox(services.sign_in, sandbox_tls, audit)
    stored = await services.tokens.read(settings.auth.connection_name)
    assert stored is not None
    now = datetime.now(UTC)  # as if obtained 58 minutes ago with a 60-minute lifetime: 2 minutes left
    dying = dataclasses.replace(
        stored,
        generation=stored.generation + 1,
        obtained_at=now - timedelta(minutes=58),
        expires_on=now + timedelta(minutes=2),
    )
    await services.tokens.write(dying)
    before = sandbox.entra.token_calls["refresh_token"]
    env = {**auth_env, "PYTHONPATH": str(REPO)}
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.auth.token_child",
            str(CALLERS),
            cwd=REPO,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        assert [await _line(child, deadline) for child in children] == ["ready"] * PROCESSES
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        reports = [json.loads(await _line(child, deadline)) for child in children]
        codes = [
            await asyncio.wait_for(child.wait(), timeout=max(0.1, deadline - time.monotonic()))
            for child in children
        ]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await audit.add_rows(auth_table)

    assert codes == [0] * PROCESSES
    assert [r["ok"] for r in reports] == [CALLERS] * PROCESSES, reports
    assert sandbox.entra.token_calls["refresh_token"] - before == 1
    newest = stored_token_set(sandbox, settings)
    assert newest is not None
    assert newest["generation"] == dying.generation + 1
    fingerprint = hashlib.sha256(newest["access_token"].encode()).hexdigest()[:16]
    assert {f for r in reports for f in r["fingerprints"]} == {fingerprint}

"""The seed's naive approach as a Function app, the benchmark's baseline worker (`--app bench.naive_app:app`).

What the seed did before this product, run the same way as the product (devhost polling `bc-jobs`, host.json's
concurrency): for every BC call it reads the access token from Key Vault (a timer put it there), sends the request
with no throttle, and on a 429 sleeps a fixed time and tries again, up to a fixed number of tries; then the job
fails. Each job's outcome is one row in `{BC_TABLE_PREFIX}naive` (State succeeded/failed), so the benchmark can
count failed jobs. Only `get` jobs are supported: the benchmark sends nothing else.

Settings (environment): the sandbox's (KEY_VAULT_URL, BC_*, LOCAL_CA_BUNDLE), JobsStorage, BC_TABLE_PREFIX,
NAIVE_TOKEN_SECRET (default `naive-bc-token`), NAIVE_SLEEP_ON_429_SECONDS (5), NAIVE_MAX_TRIES (4).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import httpx
from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient
from azure.identity.aio import ClientSecretCredential
from azure.keyvault.secrets.aio import SecretClient

app = func.FunctionApp()


@dataclass
class _Clients:
    http: httpx.AsyncClient
    credential: ClientSecretCredential
    secrets: SecretClient
    table: TableClient

    async def close(self) -> None:
        await self.http.aclose()
        await self.secrets.close()
        await self.credential.close()
        await self.table.close()


_clients: dict[asyncio.AbstractEventLoop, _Clients] = {}


async def _open() -> _Clients:
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        env = os.environ
        ca = env["LOCAL_CA_BUNDLE"]
        credential = ClientSecretCredential(
            env["BC_TENANT_ID"],
            env["BC_CLIENT_ID"],
            env["BC_CLIENT_SECRET"],
            authority=env["BC_AUTHORITY_HOST"],
            disable_instance_discovery=True,
            connection_verify=ca,
        )
        secrets = SecretClient(
            env["KEY_VAULT_URL"], credential, verify_challenge_resource=False, connection_verify=ca
        )
        table = TableClient.from_connection_string(env["JobsStorage"], f"{env['BC_TABLE_PREFIX']}naive")
        with contextlib.suppress(ResourceExistsError):
            await table.create_table()
        http = httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca), timeout=60)
        _clients[loop] = _Clients(http, credential, secrets, table)
    return _clients[loop]


def _url(job: dict[str, Any]) -> str:
    env = os.environ
    return (
        f"{env['BC_API_BASE_URL'].rstrip('/')}/v2.0/{env['BC_TENANT_ID']}/{env['BC_ENVIRONMENT']}/api/v2.0/"
        f"companies({env['BC_COMPANY_ID']})/{job['entitySet']}({job['id']})"
    )


async def _run(clients: _Clients, job: dict[str, Any]) -> str:
    """The seed's loop: token from Key Vault, call, on 429 sleep and retry."""
    secret_name = os.environ.get("NAIVE_TOKEN_SECRET", "naive-bc-token")
    sleep = float(os.environ.get("NAIVE_SLEEP_ON_429_SECONDS", "5"))
    tries = int(os.environ.get("NAIVE_MAX_TRIES", "4"))
    for _ in range(tries):
        token = (await clients.secrets.get_secret(secret_name)).value
        try:
            response = await clients.http.get(_url(job), headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError:
            return "failed"
        if response.status_code == 429:
            await asyncio.sleep(sleep)
            continue
        return "succeeded" if response.status_code < 300 else "failed"
    return "failed"


@app.function_name("naive_process")
@app.queue_trigger(arg_name="message", queue_name="bc-jobs", connection="JobsStorage")
async def naive_process(message: func.QueueMessage) -> None:
    """Run one job the naive way and record its outcome."""
    job = json.loads(base64.b64decode(message.get_body()))
    clients = await _open()
    state = await _run(clients, job)
    await clients.table.upsert_entity({"PartitionKey": str(job["jobId"]), "RowKey": "job", "State": state})


async def close_services() -> None:
    """devhost awaits this before its loop ends."""
    clients = _clients.pop(asyncio.get_running_loop(), None)
    if clients is not None:
        await clients.close()

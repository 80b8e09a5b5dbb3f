"""`make demo` end to end, smaller: Azurite + sandbox + a devhost worker (as processes), the admin's sign-in, a
mixed workload through the queue under faults, the token running out mid-run, and the demo's own checks; the S2S
mode with infra's app settings; the counting proxy in front of an HTTPS Azurite."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from azure.storage.queue import QueueClient

from demo.checks import logs_and_records_hold_no_secret, the_workers_used_the_deployed_credentials
from demo.connections import admin_registers_a_second_connection, app_runs_jobs_on_the_second_connection
from demo.context import DemoContext, DemoOptions
from demo.feed import feed_settings
from demo.main_run import app_discovers_the_company
from demo.steps import (
    STEPS,
    call_health,
    connect_to_business_central,
    inspect_one_job_with_the_cli,
    run,
    start_azurite,
    start_sandbox,
    start_storage_proxy,
    start_workers,
    stop_workers,
)
from localworld.azurite import ACCOUNT, ACCOUNT_KEY, AzuriteEndpoints
from localworld.infra_settings import LOCAL_ADDITIONS, connection_strings, infra_app_settings
from localworld.polling import wait_until
from localworld.proxy import CountingProxy, ProxyTls
from sandbox import Sandbox

pytestmark = pytest.mark.integration


def test_demo_runs_the_workload_under_faults_and_checks_its_own_outcome() -> None:
    """60 jobs, one worker: exit 0, every step in order, the summary's JSON line says every job is final and
    nothing is duplicated in BC; the ambiguous write was reconciled and the token refreshed mid-run; the second
    connection's jobs landed in the customer tenant's environment and a line per connection is in the figures."""
    transcript: list[str] = []

    code = run(STEPS, out=transcript.append, options=DemoOptions(jobs=60, workers=1, progress=False))

    text = "\n".join(transcript)
    jwt_in_transcript = "eyJ" in text  # checked first, as a bool, so no failure below prints a token
    assert not jwt_in_transcript
    steps = [line.split(" ")[1] for line in transcript if line.startswith("[")]
    assert code == 0, [line for line in transcript if "FAILED" in line]
    assert steps == [step.__name__ for step in STEPS]
    assert "callback 200: Business Central connected" in text
    assert "the workers refreshed the token" in text
    assert "as the app registration (client secret); no managed identity" in text
    assert "bcjobs show " in text
    figures = json.loads(transcript[-1])
    assert figures["non_terminal"] == 0
    assert figures["duplicates_in_bc"] == 0
    assert figures["jobs"] == 65  # 60 jobs and 5 invalid messages, each one row whatever was resent
    assert figures["rejected"] == 5
    assert figures["reconciled"] >= 1  # the ambiguous write
    assert figures["bc_requests"] > 0
    assert figures["passed"] is True
    assert transcript[-2].startswith("demo passed")
    assert "none in the primary environment" in text  # the second connection's jobs, read from BC
    assert figures["connections"]["customer"] == {"jobs": 6, "succeeded": 6}
    assert figures["connections"]["default"]["jobs"] == 65


@pytest.mark.parametrize("credential", ["secret", "federated"])
def test_demo_s2s_runs_jobs_with_the_settings_infra_deploys(
    credential: Literal["secret", "federated"],
) -> None:
    """S2S, without the main run (seconds): the workers get exactly infra's app settings and no connection string,
    discovery jobs run on the queue trigger through the counting TLS proxies, a second connection (the customer
    tenant's environment) runs jobs too, and only the managed identity reached Key Vault and got storage tokens.
    Federated (DEMO_CREDENTIAL=federated): no client secret anywhere, the identity's exchange token instead."""
    seen: dict[str, Any] = {}

    def look(context: DemoContext) -> str:
        """What the workers were given and what the proxies counted."""
        assert context.workers is not None
        assert context.proxies is not None
        seen.update(settings=dict(context.app_environment), environment=context.workers.environment())
        proxies = context.proxies

        def calls() -> Counter[str]:
            return sum((proxy.snapshot() for proxy in proxies), Counter[str]())

        # The host deletes a message after its function returned, so the last discovery job's result can be seen
        # before its DELETE went through the proxy: wait for it (a loaded machine showed 3 of 4 at once).
        wait_until(lambda: calls()["DELETE bc-jobs/messages"] >= 4, timeout=15, what="4 message deletes")
        seen.update(calls=calls())
        seen.update(proxy_ports={proxy.port for proxy in context.proxies})
        return "looked"

    steps = [
        start_sandbox, start_azurite, start_storage_proxy, start_workers, call_health,
        connect_to_business_central, app_discovers_the_company, look, admin_registers_a_second_connection,
        app_runs_jobs_on_the_second_connection, logs_and_records_hold_no_secret,
        the_workers_used_the_deployed_credentials, inspect_one_job_with_the_cli, stop_workers,
    ]  # fmt: skip
    transcript: list[str] = []

    code = run(
        steps,
        out=transcript.append,
        options=DemoOptions(mode="s2s", credential=credential, workers=1, progress=False),
    )

    text = "\n".join(transcript)
    jwt_in_transcript = "eyJ" in text
    assert not jwt_in_transcript
    assert code == 0, [line for line in transcript if "FAILED" in line]
    assert "(HTTPS, --oauth basic)" in text
    assert "no connection string or account key anywhere in the workers' environment" in text
    assert "all as the managed identity" in text
    assert "6 creates on 'customer' succeeded" in text  # client credentials in the customer tenant, S2S too
    federated_line = "exchange token(s) for the federated credential; no client secret" in text
    assert federated_line is (credential == "federated")
    settings, environment = seen["settings"], seen["environment"]
    feed = set(
        feed_settings("", datetime.now(UTC))
    )  # the demo's change feed: BC notifies devhost, timer burst
    assert set(settings) == set(infra_app_settings()) | LOCAL_ADDITIONS | feed
    assert connection_strings(environment) == []
    assert {"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "SSL_CERT_FILE"} <= set(environment)
    proxied = {f"https://127.0.0.1:{port}/{ACCOUNT}" for port in seen["proxy_ports"]}
    assert {settings["JobsStorage__queueServiceUri"], settings["JobsStorage__tableServiceUri"]} == proxied
    calls = seen["calls"]
    assert calls["GET bc-jobs/messages"] >= 1  # the trigger polled through the TLS proxy
    assert calls["DELETE bc-jobs/messages"] >= 4  # the 4 discovery jobs, each completed once at least
    assert any(key.endswith("bcjobs") for key in calls)  # job rows written through it


def test_counting_proxy_terminates_tls_and_reencrypts_to_https_azurite(
    azurite_oauth: AzuriteEndpoints, sandbox_session: Sandbox
) -> None:
    """Clients trusting the sandbox CA reach an HTTPS Azurite through the proxy; each request is counted once."""
    tls = sandbox_session.tls
    proxy = CountingProxy(
        f"https://127.0.0.1:{azurite_oauth.queue_port}",
        ProxyTls(Path(tls.server_cert), Path(tls.server_key), Path(tls.ca_bundle)),
    ).start()
    name = "p" + uuid.uuid4().hex[:12]
    connection = (
        f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint={proxy.url}/{ACCOUNT};"
    )
    try:
        with QueueClient.from_connection_string(
            connection, name, connection_verify=str(tls.ca_bundle)
        ) as queue:
            queue.create_queue()
            queue.send_message("one")
            queue.send_message("two")
            received = [message.content for message in queue.peek_messages(max_messages=2)]
    finally:
        proxy.stop()
    assert sorted(received) == ["one", "two"]
    assert proxy.snapshot() == Counter(
        {f"PUT {name}": 1, f"POST {name}/messages": 2, f"GET {name}/messages": 1}
    )

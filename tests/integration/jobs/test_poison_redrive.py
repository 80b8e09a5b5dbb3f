"""bc-jobs-poison has no poison queue (devhost as the host): when the jobs table fails through the last delivery the
host gives a poison message, jobs_poison names the job and re-drives the message; once the table is back the job
ends dead_lettered. The table is reached through a relay the test switches off and on (a real connection
failure for the real SDK)."""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

import function_app
from bcjobs import POISON_QUEUE
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.azurite import ACCOUNT, ACCOUNT_KEY, AzuriteEndpoints
from localworld.polling import wait_until
from sandbox import Sandbox
from shared.jobs.deadletter import HOST_MAX_DEQUEUE_COUNT
from shared.settings import get_settings
from tests.integration.jobs.conftest import ROOT, JobsWorld, wire

pytestmark = pytest.mark.integration

JOB = {"jobId": "poison-redrive-1", "operation": "list", "entitySet": "customers"}


class SwitchableRelay(socketserver.ThreadingTCPServer):
    """Relays TCP to `upstream`; while `down`, every connection is closed at once (storage unreachable)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.upstream = upstream
        self.down = True


class _RelayHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        relay = self.server
        assert isinstance(relay, SwitchableRelay)
        if relay.down:
            return  # the connection closes unanswered
        with socket.create_connection(relay.upstream) as upstream:
            pump = threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True)
            pump.start()
            _pipe(self.request, upstream)
            pump.join(timeout=5)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def table_relay(azurite: AzuriteEndpoints) -> Iterator[SwitchableRelay]:
    """A relay to Azurite's table service, down until the test switches it on."""
    relay = SwitchableRelay((azurite.host, azurite.table_port))
    thread = threading.Thread(target=relay.serve_forever, daemon=True)
    thread.start()
    yield relay
    relay.shutdown()
    relay.server_close()


def _put_on_its_last_delivery(world: JobsWorld) -> str:
    """Put the job on bc-jobs-poison as the host would, then receive it as often as the host's earlier deliveries
    did, so devhost's next receive is the last one the host gives (dequeue count == maxDequeueCount)."""
    with world.queue(POISON_QUEUE) as queue:
        message_id = str(queue.send_message(wire(JOB)).id)
        for _ in range(HOST_MAX_DEQUEUE_COUNT - 1):
            [message] = list(queue.receive_messages(max_messages=1, visibility_timeout=30))
            queue.update_message(message, visibility_timeout=0)
    return message_id


def test_a_job_whose_table_fails_through_the_last_poison_delivery_is_named_then_dead_lettered(
    world: JobsWorld,
    jobs_env: dict[str, str],
    sandbox: Sandbox,
    azurite: AzuriteEndpoints,
    table_relay: SwitchableRelay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Table down on the last delivery: jobs.dead_letter_failed names the job; the re-driven copy dead-letters it."""
    caplog.set_level(logging.INFO)
    storage = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint={azurite.queue_service_uri};TableEndpoint=http://127.0.0.1:{table_relay.server_address[1]}/{ACCOUNT};"
    )
    settings = {**jobs_env, "JobsStorage": storage, "DEVHOST_MESSAGE_LEASE_SECONDS": "2"}
    _put_on_its_last_delivery(world)
    get_settings.cache_clear()
    host = DevHost(
        function_app.app, settings, host_config=load_host_config(ROOT / "host.json"), shutdown_grace=10
    )
    host.start()
    try:
        wait_until(lambda: bool(_named(caplog)), timeout=60, what="jobs.dead_letter_failed naming the job")
        [failed] = _named(caplog)
        assert getattr(failed, "redriven", None) is True
        assert getattr(failed, "dequeue_count", None) == HOST_MAX_DEQUEUE_COUNT
        table_relay.down = False
        assert world.wait_for(str(JOB["jobId"]), timeout=60).state == "dead_lettered"
    finally:
        host.stop()
        get_settings.cache_clear()
    with (
        QueueClient.from_connection_string(
            world.connection_string, f"{POISON_QUEUE}-poison"
        ) as poison_poison,
        pytest.raises(ResourceNotFoundError),
    ):
        poison_poison.get_queue_properties()


def _named(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if getattr(record, "event", None) == "jobs.dead_letter_failed"
        and getattr(record, "job_id", None) == JOB["jobId"]
    ]

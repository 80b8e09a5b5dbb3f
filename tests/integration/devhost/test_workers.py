"""Worker processes per function group, as on Flex: groups share no memory, a function that runs past
functionTimeout restarts its worker (the others in flight on it fail and come back), a worker that dies is
replaced, the app's logs reach devhost's logging, and `functions=` serves a subset."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from devhost.errors import StartupError
from tests.integration.devhost.conftest import StartHost
from tests.integration.devhost.sample_app import Recorder

pytestmark = pytest.mark.integration

TIMEOUT_HOST_JSON = Path(__file__).with_name("host_timeout.json")  # the sample's, with functionTimeout 3 s


def _queue(settings: dict[str, str], name: str) -> QueueClient:
    return QueueClient.from_connection_string(
        settings["JobsStorage"],
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


def _outputs(client: QueueClient, count: int, timeout: float = 20.0) -> list[dict[str, object]]:
    """Poll the output queue (deadline) until `count` messages came; delete and return them."""
    found: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(found)} output message(s) after {timeout}s: {found}")
        try:
            messages = list(client.receive_messages(max_messages=32))
        except ResourceNotFoundError:  # created on devhost's first write
            continue
        for message in messages:
            found.append(json.loads(message.content))
            client.delete_message(message)
    return found


def _runs(recorder: Recorder, body: str) -> list[tuple[int, int, str]]:
    """(dequeue count, worker pid, invocation id) of each run of `work` on the message `body`."""
    return [
        (int(str(e.data["dequeue_count"])), e.pid, str(e.data["invocation_id"]))
        for e in recorder.events("work")
        if e.data["body"] == body
    ]


def test_a_timed_out_function_restarts_its_worker_and_the_others_in_flight_come_back(
    start_devhost: StartHost,
    sample_settings: dict[str, str],
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One run passes functionTimeout (3 s) while two more run on the same worker: the worker is killed (the
    timed-out run's `finally` never runs), all three fail, come back with dequeue count 2 on a new worker
    process and succeed; devhost logs the host's restart warning with the timed-out invocation's id."""
    start_devhost(sample_settings, host_json=TIMEOUT_HOST_JSON)
    with (
        _queue(sample_settings, sample_settings["SAMPLE_QUEUE"]) as inbox,
        _queue(sample_settings, sample_settings["SAMPLE_OUT_QUEUE"]) as outbox,
        caplog.at_level(logging.WARNING, logger="devhost.worker"),
    ):
        inbox.send_message("hold-timed-out")
        recorder.wait_for("work", count=1)  # running: its 3 s start now
        inbox.send_message("hold-a")
        inbox.send_message("hold-b")
        recorder.wait_for("work", count=3)  # all three in flight on one worker before the first times out
        outputs = _outputs(outbox, count=3)
    assert sorted((o["done"], o["dequeue_count"]) for o in outputs) == [
        ("hold-a", 2),
        ("hold-b", 2),
        ("hold-timed-out", 2),
    ]
    [(_, first_pid, timed_out_id), (_, second_pid, _)] = _runs(recorder, "hold-timed-out")
    assert {pid for _, pid, _ in _runs(recorder, "hold-a")} == {first_pid, second_pid}
    assert first_pid != second_pid
    assert recorder.events("finally") == []  # killed, not cancelled: no `finally`
    warnings = [r.getMessage() for r in caplog.records if "A function timeout has occurred" in r.getMessage()]
    assert warnings == [
        f"A function timeout has occurred. Restarting worker process executing invocationId '{timed_out_id}'."
    ]


def test_groups_do_not_share_memory(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """`work` (a queue group) keeps the last body in a module global; the HTTP group's `last-work` does not
    see it, as on Flex where each group runs on its own instances."""
    host = start_devhost(sample_settings)
    with _queue(sample_settings, sample_settings["SAMPLE_QUEUE"]) as inbox:
        inbox.send_message("handed-off-in-memory")
        [run] = recorder.wait_for("work")
    answer = httpx.get(f"{host.base_url}/api/last-work")
    assert (answer.status_code, answer.text) == (200, "")
    pids = host.worker_pids()
    assert pids["function:work"] == run.pid != pids["http"]
    assert os.getpid() not in pids.values()


def test_a_worker_that_dies_fails_its_invocation_and_is_replaced(
    start_devhost: StartHost, sample_settings: dict[str, str]
) -> None:
    """A function that ends its process (os._exit) answers 500; the group's next request runs in a new worker."""
    host = start_devhost(sample_settings)
    before = httpx.get(f"{host.base_url}/api/pid").text
    assert httpx.get(f"{host.base_url}/api/exit").status_code == 500
    after = httpx.get(f"{host.base_url}/api/pid")
    assert after.status_code == 200
    assert after.text != before


def test_app_log_records_reach_devhosts_logging_with_their_extras(
    start_devhost: StartHost, sample_settings: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A record the app logs in its worker is logged again in devhost's process, same logger, level and extras."""
    host = start_devhost(sample_settings)
    with caplog.at_level(logging.INFO, logger="sample"):
        pid = int(httpx.get(f"{host.base_url}/api/pid").text)
    [record] = [r for r in caplog.records if r.name == "sample"]
    assert (record.levelno, record.getMessage()) == (logging.WARNING, "pid asked")
    assert getattr(record, "fields") == {"event": "sample_pid", "pid": pid}  # noqa: B009 - an extra
    assert record.process == pid != os.getpid()


def test_the_worker_environment_is_the_app_settings(
    start_devhost: StartHost, sample_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A setting reaches the app's os.environ; a variable of devhost's own environment that is no setting does not."""
    monkeypatch.setenv("SAMPLE_NOT_A_SETTING", "devhost's own")
    host = start_devhost(sample_settings)
    assert httpx.get(f"{host.base_url}/api/env/SAMPLE_QUEUE").text == sample_settings["SAMPLE_QUEUE"]
    assert httpx.get(f"{host.base_url}/api/env/SAMPLE_NOT_A_SETTING").text == ""


def test_functions_serves_only_the_named_functions(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """functions={"work", "open_route"}: the queue trigger runs and /api/open answers; other routes are 404."""
    host = start_devhost(sample_settings, functions={"work", "open_route"})
    key = {"code": sample_settings["DEVHOST_FUNCTION_KEY"]}
    assert httpx.get(f"{host.base_url}/api/open").status_code == 200
    assert httpx.get(f"{host.base_url}/api/items/1", params=key).status_code == 404
    with _queue(sample_settings, sample_settings["SAMPLE_QUEUE"]) as inbox:
        inbox.send_message("served")
        recorder.wait_for("work")
    assert [f.spec.name for f in host.catalog.http] == ["open_route"]


def test_functions_refuses_a_name_the_app_does_not_have(
    start_devhost: StartHost, sample_settings: dict[str, str]
) -> None:
    """An unknown name stops devhost from starting, and the error names it."""
    with pytest.raises(StartupError, match="unknown function\\(s\\): no_such_function"):
        start_devhost(sample_settings, functions={"work", "no_such_function"})

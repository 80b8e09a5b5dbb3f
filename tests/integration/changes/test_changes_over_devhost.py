"""The change log as an application reads it: function_app.py on devhost, `GET /api/changes` through the client
and `bcjobs changes --follow` as a process, until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from bcjobs.change_client import ChangesApiError, ChangesClient
from bcjobs.cli import app as cli
from localworld.polling import wait_until
from testkit.changes import change_event
from tests.fakes.change_contract import conforming
from tests.integration.changes.conftest import AppHost, Publisher

pytestmark = pytest.mark.integration


def ids(n: int) -> list[str]:
    return [f"c0a8e2b1-0000-0000-0000-{i:012d}" for i in range(n)]


def test_the_client_reads_the_log_page_by_page_with_its_cursor(
    app_host: AppHost, publisher: Publisher
) -> None:
    """Three events, read two at a time: each once, in publish order; a read after the last is empty."""
    name = publisher.connection
    events = [change_event(entity_id, connection=name) for entity_id in ids(3)]
    assert publisher.publish(events).new == 3
    with ChangesClient(app_host.base_url, app_host.function_key) as client:
        first = client.changes(name, "customers", limit=2)
        rest = client.changes(name, "customers", after=first.next, limit=2)
        after_all = client.changes(name, "customers", after=rest.next)
        with pytest.raises(ChangesApiError, match="bcjobs connections list") as unknown:
            client.changes("no-such-connection", "customers")
    assert [e.id for e in first.changes + rest.changes] == [e.id for e in events]
    assert after_all.changes == ()
    assert unknown.value.status == 404


class Lines:
    """A process's output lines, read on a thread so the test can poll them."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)


@pytest.fixture
def follower(app_host: AppHost, publisher: Publisher) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "BCJOBS_API_URL": app_host.base_url,
        "BCJOBS_FUNCTION_KEY": app_host.function_key,
        "COLUMNS": "250",
    }
    command = [sys.executable, "-m", "bcjobs", "changes", "--connection", publisher.connection]
    command += ["--entity-set", "customers"]
    process = subprocess.Popen(
        [*command, "--follow", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with process:  # closes its pipes
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


def test_changes_follow_prints_each_change_as_it_arrives_and_ends_cleanly_on_ctrl_c(
    follower: subprocess.Popen[str], publisher: Publisher
) -> None:
    """Two events, then a third while it follows: three lines; Ctrl-C ends it with the resume cursor, no trace."""
    first, second, third = (change_event(entity_id, connection=publisher.connection) for entity_id in ids(3))
    publisher.publish([first, second])
    out = Lines(follower.stdout)
    wait_until(lambda: len(out.lines) >= 2, timeout=30, what="the first two changes")
    # Now, as the expansion would: readable once the settle time (15 s) has passed; `first` again is not logged
    publisher.publish([third, first], ago=timedelta(0))
    wait_until(lambda: len(out.lines) >= 3, timeout=45, what="the third change")
    follower.send_signal(signal.SIGINT)
    assert follower.wait(timeout=15) == 130
    out.thread.join(timeout=5)  # the pipe's end: read to EOF before the fixture closes it
    stderr = follower.stderr.read() if follower.stderr else ""
    assert "Traceback" not in stderr
    assert "resume with --after" in stderr
    assert [line.split()[3] for line in out.lines] == [first.subject, second.subject, third.subject]


def test_changes_json_prints_each_event_as_a_cloudevent_line(app_host: AppHost, publisher: Publisher) -> None:
    """JSON Lines: each line parses with the cloudevents SDK and validates against the schema; exit 0."""
    events = [change_event(entity_id, connection=publisher.connection) for entity_id in ids(2)]
    publisher.publish(events)
    env = {"BCJOBS_API_URL": app_host.base_url, "BCJOBS_FUNCTION_KEY": app_host.function_key}
    args = ["changes", "--connection", publisher.connection, "--entity-set", "customers", "--json"]
    done = CliRunner().invoke(cli, args, env=env)
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert [conforming(line)["id"] for line in lines] == [e.id for e in events]

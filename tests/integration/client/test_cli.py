"""The `bcjobs` CLI against Azurite, through its entry point (typer's runner; `python -m bcjobs` once)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bcjobs import JOBS_QUEUE, RESULTS_QUEUE, ErrorInfo, Job, JobReport, JobState, ResultSummary, decode
from bcjobs.cli import ExitCode, app
from bcjobs.rows import AuditedInteraction
from localworld.ports import free_port
from tests.integration.client.conftest import Storage

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples" / "jobs").glob("*.json"))
Run = Callable[..., Result]


@pytest.fixture
def run(storage: Storage) -> Run:
    """Invoke the CLI with the test's storage in the environment, as a user's shell would hold it."""
    runner = CliRunner()
    env = {"JobsStorage": storage.connection_string, "BC_TABLE_PREFIX": storage.prefix, "COLUMNS": "200"}

    def invoke(*args: str, **overrides: str | None) -> Result:
        return runner.invoke(app, list(args), env={**env, **overrides})

    return invoke


def test_a_jsonl_file_with_ten_bad_lines_enqueues_the_other_990_and_names_each_bad_line(
    run: Run, storage: Storage, tmp_path: Path
) -> None:
    """1,000 lines, 10 bad (broken JSON, missing fields, bad GUIDs): 990 on bc-jobs, the 10 reported by line."""
    bad_lines = {7, 100, 250, 333, 500, 501, 640, 777, 901, 1000}
    lines = []
    for number in range(1, 1001):
        job = {
            "jobId": f"bulk-{number}",
            "operation": "get",
            "entitySet": "customers",
            "id": f"00000000-0000-4000-8000-{number:012d}",
        }
        if number in bad_lines:
            kind = number % 3
            if kind == 0:
                lines.append('{"jobId": "broken", "operation": ')
                continue
            if kind == 1:
                job["id"] = "not-a-guid"
            else:
                del job["entitySet"]
        lines.append(json.dumps(job))
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run("enqueue", str(path), "--json")

    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    report = json.loads(result.stdout)
    assert report["total"] == 1000
    assert len(report["enqueued"]) == 990
    assert [entry["line"] for entry in report["rejected"]] == sorted(bad_lines)
    assert all(entry["problems"] for entry in report["rejected"])
    by_line = {entry["line"]: entry for entry in report["rejected"]}
    assert by_line[100]["problems"][0]["path"] == "id"  # 100 % 3 == 1: the bad GUID is named
    assert by_line[1000]["jobId"] == "bulk-1000"
    on_queue = sorted(decode(text).job_id or "" for text in storage.drain(JOBS_QUEUE))
    assert on_queue == sorted(f"bulk-{n}" for n in range(1, 1001) if n not in bad_lines)


def test_the_human_report_shows_each_bad_line_with_its_field(
    run: Run, storage: Storage, tmp_path: Path
) -> None:
    """Without --json: a table of the rejected lines (field and expectation) and a summary."""
    path = tmp_path / "few.jsonl"
    path.write_text(
        '{"operation": "list", "entitySet": "items"}\n'
        "\n"
        '{"operation": "update", "entitySet": "items", "id": "x", "data": {"a": 1}}\n'
        "{oops\n",
        encoding="utf-8",
    )
    result = run("enqueue", str(path))
    assert result.exit_code == ExitCode.INCOMPLETE
    assert "line 3" in result.stdout
    assert "GUID" in result.stdout
    assert "line 4" in result.stdout
    assert "1 of 3 jobs enqueued, 2 rejected" in result.stdout
    assert storage.count(JOBS_QUEUE) == 1


def test_strict_sends_nothing_when_one_job_is_bad(run: Run, storage: Storage, tmp_path: Path) -> None:
    """--strict: all or nothing."""
    path = tmp_path / "jobs.json"
    path.write_text(
        json.dumps([{"operation": "list", "entitySet": "items"}, {"operation": "list"}]), encoding="utf-8"
    )
    result = run("enqueue", str(path), "--strict", "--json")
    assert result.exit_code == ExitCode.INCOMPLETE
    assert [entry["item"] for entry in json.loads(result.stdout)["rejected"]] == [2]
    assert storage.count(JOBS_QUEUE) == 0


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_file_is_enqueued_as_the_trigger_reads_it(
    run: Run, storage: Storage, path: Path
) -> None:
    """One example per operation, sent by the CLI, decodes to the same job."""
    result = run("enqueue", str(path))
    assert result.exit_code == ExitCode.OK, result.output
    [text] = storage.drain(JOBS_QUEUE)
    sent = decode(text)
    assert sent.job_id
    assert sent == Job.model_validate(json.loads(path.read_text(encoding="utf-8"))).with_job_id(sent.job_id)


def test_show_prints_state_error_with_bc_code_and_the_interaction_log(run: Run, storage: Storage) -> None:
    """Human: the panel and the BC requests table; --json: the report with its interactions."""
    storage.put_job(
        "s-1",
        JobState.FAILED,
        attempts=2,
        error=ErrorInfo(
            code="bc_validation",
            message="Item No. must have a value",
            bc_code="Internal_Validation",
            status=400,
        ),
    )
    storage.put_interactions(
        "s-1",
        [
            AuditedInteraction(
                attempt=1, sequence=1, method="POST", path="/companies(c)/items", status=503, duration_ms=12.5
            ),
            AuditedInteraction(
                attempt=2,
                sequence=1,
                method="POST",
                path="/companies(c)/items",
                status=400,
                bc_error_code="Internal_Validation",
            ),
        ],
    )
    human = run("show", "s-1")
    assert human.exit_code == ExitCode.OK, human.output
    for expected in (
        "job s-1",
        "failed",
        "bc_validation",
        "Internal_Validation",
        "Item No. must have a value",
        "BC requests",
        "/companies(c)/items",
        "503",
    ):
        assert expected in human.stdout, expected
    machine = run("show", "s-1", "--json")
    body = json.loads(machine.stdout)
    assert (body["state"], body["attempts"], body["error"]["bcCode"]) == ("failed", 2, "Internal_Validation")
    assert [(i["attempt"], i["status"]) for i in body["interactions"]] == [(1, 503), (2, 400)]
    missing = run("show", "nope")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert "not found" in missing.stderr


def test_list_filters_by_state_and_since(run: Run, storage: Storage) -> None:
    """--state and --since (a duration) pick the rows; the table and the JSON agree."""
    now = datetime.now(UTC)
    storage.put_job("old-fail", JobState.FAILED, updated_at=now - timedelta(days=3))
    storage.put_job(
        "new-fail",
        JobState.FAILED,
        updated_at=now - timedelta(minutes=5),
        error=ErrorInfo(code="bc_error", message="x", bc_code="BadRequest"),
    )
    storage.put_job("new-ok", JobState.SUCCEEDED, updated_at=now)
    machine = run("list", "--state", "failed", "--since", "2h", "--json")
    assert machine.exit_code == ExitCode.OK, machine.output
    assert [job["jobId"] for job in json.loads(machine.stdout)] == ["new-fail"]
    human = run("list", "--since", "1d")
    assert "new-fail" in human.stdout
    assert "new-ok" in human.stdout
    assert "old-fail" not in human.stdout
    assert "BadRequest" in human.stdout
    assert run("list", "--since", "soon").exit_code == ExitCode.USAGE
    assert run("list", "--state", "sleeping").exit_code == ExitCode.USAGE


def test_wait_exit_codes_tell_succeeded_failed_and_timed_out_apart(run: Run, storage: Storage) -> None:
    """0 when the job succeeded, 1 when it ended otherwise, 5 when the deadline passed first."""
    storage.put_job("ok", JobState.SUCCEEDED, result=ResultSummary(id="abc", number="C-1"))
    storage.put_job("bad", JobState.DEAD_LETTERED)
    storage.put_job("slow", JobState.RUNNING)
    succeeded = run("wait", "ok", "--json")
    assert succeeded.exit_code == ExitCode.OK
    assert json.loads(succeeded.stdout)["result"]["number"] == "C-1"
    assert run("wait", "bad").exit_code == ExitCode.INCOMPLETE
    slow = run("wait", "slow", "--timeout", "0.2", "--poll", "0.05", "--json")
    assert slow.exit_code == ExitCode.TIMEOUT
    assert json.loads(slow.stdout)["last"]["state"] == "running"


def test_results_prints_each_report_once_and_deletes_it(run: Run, storage: Storage) -> None:
    """--json prints JSON Lines; the queue is empty afterwards; a second run finds nothing."""
    storage.publish(JobReport(job_id="q-1", state=JobState.SUCCEEDED, result=ResultSummary(id="id-1")))
    storage.publish(
        JobReport(
            job_id="q-2",
            state=JobState.FAILED,
            error=ErrorInfo(code="bc_error", message="nope", bc_code="BadRequest"),
        )
    )
    machine = run("results", "--json")
    assert machine.exit_code == ExitCode.OK, machine.output
    assert sorted(json.loads(line)["jobId"] for line in machine.stdout.splitlines()) == ["q-1", "q-2"]
    assert storage.count(RESULTS_QUEUE) == 0
    storage.publish(
        JobReport(
            job_id="q-3",
            state=JobState.FAILED,
            error=ErrorInfo(code="bc_error", message="nope", bc_code="BadRequest"),
        )
    )
    human = run("results", "--follow", "--idle-timeout", "0.3")
    assert human.exit_code == ExitCode.OK
    assert "q-3" in human.stdout
    assert "BadRequest" in human.stdout
    assert "no results" in run("results").stderr


def test_missing_or_unreachable_storage_have_their_own_exit_codes(run: Run, storage: Storage) -> None:
    """No storage configured → 2; storage not answering → 3 (the message names neither key nor URL)."""
    assert run("show", "x", JobsStorage=None).exit_code == ExitCode.USAGE
    dead = re.sub(
        r"TableEndpoint=http://127\.0\.0\.1:\d+",
        f"TableEndpoint=http://127.0.0.1:{free_port()}",
        storage.connection_string,
    )
    unreachable = run("show", "x", JobsStorage=dead)
    assert unreachable.exit_code == ExitCode.STORAGE
    assert "AccountKey" not in unreachable.output


def test_python_m_bcjobs_is_the_same_cli() -> None:
    """The module entry point answers --help with the commands."""
    done = subprocess.run(
        [sys.executable, "-m", "bcjobs", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    for command in ("enqueue", "show", "list", "wait", "results"):
        assert command in done.stdout


def test_list_limit_shows_the_newest_jobs_whatever_their_ids(run: Run, storage: Storage) -> None:
    """Ids that sort opposite to their update times: --limit 2 shows the two updated last, newest first."""
    now = datetime.now(UTC)
    for number, job_id in enumerate(("a-oldest", "b-older", "c-newer", "d-newest")):
        storage.put_job(job_id, JobState.FAILED, updated_at=now - timedelta(minutes=10 * (4 - number)))
    for job_id, minutes in (("a-newest", 1), ("b-newer", 2)):
        storage.put_job(job_id, JobState.FAILED, updated_at=now - timedelta(seconds=minutes))
    machine = run("list", "--limit", "2", "--json")
    assert machine.exit_code == ExitCode.OK, machine.output
    assert [job["jobId"] for job in json.loads(machine.stdout)] == ["a-newest", "b-newer"]
    human = run("list", "--limit", "2")
    assert "newest 2 of 6" in human.stdout


@pytest.mark.parametrize("command", ["enqueue", "show"])
def test_storage_down_fails_within_seconds_naming_where_and_the_local_world(
    run: Run, storage: Storage, tmp_path: Path, command: str
) -> None:
    """Azurite's account on a port nothing listens on: exit 3 in seconds, host and port named, `make dev` asked."""
    port = free_port()
    dead = re.sub(
        r"(Queue|Table)Endpoint=http://127\.0\.0\.1:\d+",
        rf"\1Endpoint=http://127.0.0.1:{port}",
        storage.connection_string,
    )
    job = tmp_path / "job.json"
    job.write_text('{"operation": "list", "entitySet": "items"}', encoding="utf-8")
    started = time.monotonic()
    done = run(command, str(job) if command == "enqueue" else "x", JobsStorage=dead)
    assert time.monotonic() - started < 20
    assert done.exit_code == ExitCode.STORAGE, done.output
    message = " ".join(done.stderr.split())
    assert f"127.0.0.1:{port}" in message
    assert "is Azurite / `make dev` running?" in message
    assert "AccountKey" not in done.output


def test_no_storage_configured_suggests_the_local_world(run: Run) -> None:
    """Nothing set: exit 2 and the exact line that works against `make dev`."""
    done = run("list", JobsStorage=None)
    assert done.exit_code == ExitCode.USAGE
    assert "JobsStorage=UseDevelopmentStorage=true bcjobs list" in " ".join(done.stderr.split())


def test_enqueue_takes_several_files_and_names_each_bad_entrys_file(
    run: Run, storage: Storage, tmp_path: Path
) -> None:
    """Two files: the good jobs of both are sent; a bad one is reported with its file and line."""
    first, second = tmp_path / "a.json", tmp_path / "b.jsonl"
    first.write_text('{\n "operation": "list",\n "entitySet": "items"\n}\n', encoding="utf-8")
    second.write_text('{"operation": "list", "entitySet": "items"}\n{"operation": \n', encoding="utf-8")
    done = run("enqueue", str(first), str(second), "--json")
    assert done.exit_code == ExitCode.INCOMPLETE, done.output
    report = json.loads(done.stdout)
    assert (report["total"], len(report["enqueued"])) == (3, 2)
    assert [(r["file"], r["line"]) for r in report["rejected"]] == [(str(second), 2)]
    assert storage.count(JOBS_QUEUE) == 2


def test_help_shows_no_type_labels_on_flags_nor_braces_around_arguments(run: Run) -> None:
    """`--json` is a flag, not `--json <bool>`; the usage line reads `FILE...` and `JOB_ID`."""
    enqueue = run("enqueue", "--help")
    assert "<bool>" not in enqueue.stdout
    usage = next(line for line in enqueue.stdout.splitlines() if "Usage:" in line)
    assert "FILE..." in usage
    assert "{" not in usage
    assert "JOB_ID" in run("show", "--help").stdout
    assert "<bool>" not in run("--help").stdout


def test_a_bad_since_names_the_option(run: Run) -> None:
    """`--since yesterday`: a usage error that says which option and what it takes."""
    done = run("list", "--since", "yesterday")
    assert done.exit_code == ExitCode.USAGE
    message = " ".join(done.stderr.split())
    assert "--since" in message
    assert "'yesterday' is not a duration" in message


def test_results_peek_prints_the_reports_and_leaves_them_on_the_queue(run: Run, storage: Storage) -> None:
    """--peek: the same lines as a normal run, the queue unchanged; --max caps what is shown."""
    for number in (1, 2):
        storage.publish(
            JobReport(job_id=f"p-{number}", state=JobState.SUCCEEDED, result=ResultSummary(id="x"))
        )
    peeked = run("results", "--peek", "--json")
    assert peeked.exit_code == ExitCode.OK, peeked.output
    assert sorted(json.loads(line)["jobId"] for line in peeked.stdout.splitlines()) == ["p-1", "p-2"]
    assert storage.count(RESULTS_QUEUE) == 2
    assert len(run("results", "--peek", "--max", "1", "--json").stdout.splitlines()) == 1
    assert run("results", "--peek", "--follow").exit_code == ExitCode.USAGE
    taken = run("results", "--json")
    assert len(taken.stdout.splitlines()) == 2
    assert storage.count(RESULTS_QUEUE) == 0

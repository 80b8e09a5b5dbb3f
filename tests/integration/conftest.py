"""Integration-tier leak check: no log record of any integration test may carry a JWT or the sandbox's secrets.

Every record (root handler at DEBUG) is collected during the test and checked at teardown: its rendered message,
its extras, its exception and stack text. The failure names the record's logger and what leaked, never the value;
the report's captured output (pytest's "Captured log" sections) is scrubbed of the same values, so a failing
test does not print them either. tests/integration/auth's `audit` fixture checks more there (Key Vault tokens,
auth codes, Table rows).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Iterator

import pytest

from sandbox import Sandbox

# A compact JWS: header.payload. (shared/redaction.py matches the same shape).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.")
_JWT_WHOLE = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SECRETS = pytest.StashKey[dict[str, str]]()


class LogCollector(logging.Handler):
    """Keeps every record it sees."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _texts(record: logging.LogRecord) -> dict[str, str]:
    """What a formatter would write for `record`: message, extras, exception and stack text."""
    try:
        texts = {"message": record.getMessage()}
    except (TypeError, ValueError):  # msg % args failed: logging's error report prints both parts
        texts = {"message": f"{record.msg!s} {record.args!r}"}
    extras = {key: value for key, value in vars(record).items() if key not in _STANDARD}
    if extras:
        texts["extras"] = repr(extras)
    if (
        record.exc_text
    ):  # Formatter.format reuses exc_text (shared/redaction.py stores the redacted one there)
        texts["exception"] = record.exc_text
    elif record.exc_info:
        texts["exception"] = logging.Formatter().formatException(record.exc_info)
    if record.stack_info:
        texts["stack"] = record.stack_info
    return texts


def _sandbox_secrets(request: pytest.FixtureRequest) -> dict[str, str]:
    """Name -> value of the sandbox's client secrets, when the test uses the sandbox."""
    if not {"sandbox", "sandbox_session"} & set(request.fixturenames):
        return {}
    running: Sandbox = request.getfixturevalue("sandbox_session")
    secrets = {"BC_CLIENT_SECRET": running.env["BC_CLIENT_SECRET"]}
    secrets.update(
        {f"extra client {n}'s secret": secret for n, (_, secret) in enumerate(running.extra_clients())}
    )
    return {
        name: value for name, value in secrets.items() if len(value) >= 8
    }  # a short value matches by chance


def leaks(records: list[logging.LogRecord], secrets: dict[str, str]) -> list[str]:
    """Descriptions (never the values) of every JWT or secret in the records."""
    problems: list[str] = []
    for index, record in enumerate(records):
        where = f"record #{index} ({record.name}, {record.levelname}, {record.pathname}:{record.lineno})"
        for part, text in _texts(record).items():
            if _JWT.search(text):
                problems.append(f"{where}: its {part} contains a JWT")
            problems += [
                f"{where}: its {part} contains {name}" for name, value in secrets.items() if value in text
            ]
    return problems


def scrub(text: str, secrets: dict[str, str]) -> str:
    """`text` with JWTs and the given secret values replaced by a placeholder."""
    for value in secrets.values():
        text = text.replace(value, "[LEAKED SECRET]")
    return _JWT_WHOLE.sub("[LEAKED JWT]", text)


@pytest.fixture(autouse=True)
def no_secret_in_logs(request: pytest.FixtureRequest) -> Iterator[LogCollector]:
    """Collect every log record of the test at DEBUG; fail at teardown if one carries a JWT or a sandbox secret."""
    secrets = _sandbox_secrets(request)
    request.node.stash[_SECRETS] = secrets
    collector = LogCollector()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
        root.setLevel(previous)
    found = leaks(collector.records, secrets)
    if found:
        pytest.fail("secret leaked into logs:\n" + "\n".join(found), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Scrub JWTs and sandbox secrets from the captured output (log, stdout, stderr) a report would print."""
    report = yield
    secrets = item.stash.get(_SECRETS, {})
    report.sections = [(title, scrub(content, secrets)) for title, content in report.sections]
    return report

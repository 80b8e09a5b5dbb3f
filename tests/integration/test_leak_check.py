"""The integration tier's log leak check (tests/integration/conftest.py) is able to fail, and never echoes a value."""

from __future__ import annotations

import logging

import pytest

from tests.integration.conftest import LogCollector, leaks, scrub

pytestmark = pytest.mark.integration

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eHh4eHgifQ.c2lnbmF0dXJl"
SECRETS = {"BC_CLIENT_SECRET": "s3cr3t-value-for-the-check"}


def test_debug_records_are_collected_whatever_the_root_level(no_secret_in_logs: LogCollector) -> None:
    """The autouse check sees a DEBUG record from any logger."""
    logging.getLogger("tests.leak_check").debug("seen at debug")
    assert "seen at debug" in [record.getMessage() for record in no_secret_in_logs.records]


def test_a_jwt_or_secret_anywhere_in_a_record_is_described_without_its_value() -> None:
    """A JWT in the message and the client secret in extras or exception text are each reported, by name only."""
    in_message = logging.makeLogRecord({"name": "a", "msg": "token %s", "args": (JWT,)})
    in_extras = logging.makeLogRecord(
        {"name": "b", "msg": "call", "fields": {"body": SECRETS["BC_CLIENT_SECRET"]}}
    )
    in_exception = logging.makeLogRecord({"name": "c", "msg": "failed", "exc_text": f"Error: {JWT}"})
    clean = logging.makeLogRecord({"name": "d", "msg": "eyJ alone is not a token"})

    problems = leaks([in_message, in_extras, in_exception, clean], SECRETS)

    assert [problem.split(": ", 1)[1] for problem in problems] == [
        "its message contains a JWT",
        "its extras contains BC_CLIENT_SECRET",
        "its exception contains a JWT",
    ]
    echoed = any(JWT in problem or SECRETS["BC_CLIENT_SECRET"] in problem for problem in problems)
    assert not echoed


def test_captured_output_is_scrubbed_of_jwts_and_secrets() -> None:
    """What a failing report would print has the JWT and the secret replaced."""
    captured = f"DEBUG x Bearer {JWT} with {SECRETS['BC_CLIENT_SECRET']}"
    assert scrub(captured, SECRETS) == "DEBUG x Bearer [LEAKED JWT] with [LEAKED SECRET]"

"""The clients' SDK-independent steps: list filters, continuation tokens, results messages, poll backoff."""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from bcjobs import JobReport, JobState
from bcjobs.common import (
    decode_continuation,
    encode_continuation,
    list_query,
    poll_delays,
    report_from_message,
    report_message,
    storage_error,
)


def test_continuation_tokens_round_trip_and_foreign_ones_are_refused() -> None:
    """The Table SDK's next keys travel as one opaque URL-safe string; anything else is a ValueError."""
    token = {"PartitionKey": "job-2", "RowKey": "job"}
    text = encode_continuation(token)
    assert text is not None
    assert text.replace("-", "").replace("_", "").isalnum()
    assert decode_continuation(text) == token
    assert encode_continuation(None) is None
    assert decode_continuation(None) is None
    for garbage in ("%%%", "bm90IGpzb24", base64.urlsafe_b64encode(b"[1]").decode()):
        with pytest.raises(ValueError, match="continuation token"):
            decode_continuation(garbage)


def test_the_list_filter_is_parameterised_and_needs_an_aware_since() -> None:
    """State and since become parameters (never pasted into the filter); a naive since is refused."""
    since = datetime(2026, 12, 1, tzinfo=UTC)
    query, parameters = list_query("failed", since)
    assert query == "RowKey eq @row and State eq @state and UpdatedAt ge @since"
    assert parameters == {"row": "job", "state": "failed", "since": since}
    with pytest.raises(ValueError, match="failed!"):
        list_query("failed!", None)
    with pytest.raises(ValueError, match="timezone-aware"):
        list_query(None, datetime(2026, 12, 1))  # noqa: DTZ001


def test_results_messages_decode_from_base64_and_plain_json() -> None:
    """The product publishes base64 JSON; plain JSON is read too; anything else is a ValueError."""
    report = JobReport(job_id="j-1", state=JobState.SUCCEEDED, attempts=1)
    assert report_from_message(report_message(report)) == report
    assert report_from_message(report.to_json()) == report
    with pytest.raises(ValueError, match="base64"):
        report_from_message("!!")
    with pytest.raises(ValueError, match=r"jobId|state"):
        report_from_message(base64.b64encode(b'{"hello": 1}').decode())


def test_poll_delays_grow_to_the_cap() -> None:
    """Status polls back off by half each time, never past the cap."""
    assert list(itertools.islice(poll_delays(1.0, cap=4.0), 6)) == [1.0, 1.5, 2.25, 3.375, 4.0, 4.0]
    assert list(itertools.islice(poll_delays(5.0, cap=2.0), 2)) == [5.0, 5.0]


def test_storage_errors_name_status_and_code_but_no_url() -> None:
    """A failed SDK call becomes JobsStorageError with a hint, without the URL (it may hold a SAS)."""
    refused = HttpResponseError(message="https://acct.queue.core.windows.net/bc-jobs?sig=SECRET failed")
    refused.status_code = 403
    refused.error_code = "AuthorizationPermissionMismatch"  # type: ignore[attr-defined]  # set by the storage SDKs
    error = storage_error("sending job j-1 to bc-jobs", refused)
    assert (error.status, error.error_code) == (403, "AuthorizationPermissionMismatch")
    assert "role" in str(error)
    assert "SECRET" not in str(error)
    assert "https" not in str(error)
    offline = storage_error("listing jobs", ServiceRequestError("https://x/?sig=SECRET unreachable"))
    assert "could not be reached" in str(offline)
    assert "SECRET" not in str(offline)

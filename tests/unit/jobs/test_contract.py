"""The v1 job contract: published schema in step with the model, examples valid, precise rejections."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bcjobs import MAX_JOB_BYTES, InvalidJobError, Job, Operation, decode, encode
from bcjobs.schema import SCHEMA_DIR, main, rendered, schemas

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples" / "jobs").glob("*.json"))
GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"


def wire(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode("utf-8")).decode("ascii")


def problems(value: Any) -> list[str]:
    with pytest.raises(InvalidJobError) as caught:
        decode(wire(value))
    return [str(problem) for problem in caught.value.problems]


def test_the_published_schema_files_match_the_models() -> None:
    """`python -m bcjobs.schema --check` fails as soon as a model changes without regenerating the files."""
    assert main(["--check"]) == 0
    for name, schema in schemas().items():
        assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == rendered(schema)


def test_the_check_reports_a_stale_schema_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema file that differs from the model makes the check fail."""
    import bcjobs.schema as module

    for name in schemas():
        (tmp_path / name).write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(module, "SCHEMA_DIR", tmp_path)
    assert main(["--check"]) == 1


def test_there_is_an_example_for_every_operation() -> None:
    """The README's examples cover the whole contract."""
    operations = {json.loads(path.read_text(encoding="utf-8"))["operation"] for path in EXAMPLES}
    assert operations == {operation.value for operation in Operation}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_each_example_is_valid_for_the_json_schema_and_the_model(path: Path) -> None:
    """A non-Python app validating against the published schema and the trigger agree on every example."""
    value = json.loads(path.read_text(encoding="utf-8"))
    schema = json.loads((SCHEMA_DIR / "bc-job.v1.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
    job = decode(wire(value))
    assert decode(encode(job)) == job


def test_a_job_without_schema_version_is_version_1() -> None:
    """schemaVersion may be left out."""
    assert decode(wire({"operation": "list", "entitySet": "items"})).schema_version == 1


def test_an_unknown_schema_version_is_named_in_the_reason() -> None:
    """Version 2 is refused with its number and what to send instead."""
    assert problems({"schemaVersion": 2, "operation": "list", "entitySet": "items"}) == [
        "schemaVersion: 1 (version 2 is not supported; send schemaVersion 1)"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"operation": "get", "entitySet": "customers"}, "`get` needs `id`"),
        ({"operation": "frob", "entitySet": "customers"}, "operation: Input should be 'get'"),
        ({"operation": "list", "entitySet": "x; drop"}, "entitySet: String should match pattern"),
        ({"operation": "get", "entitySet": "customers", "id": "not-a-guid"}, "id: a GUID such as"),
        ({"operation": "create", "entitySet": "items", "data": {}}, "`data` must hold at least one field"),
        ({"operation": "create", "entitySet": "items", "data": {"a": 1}, "colour": 1}, "colour: not a field"),
        ({"operation": "upsert", "entitySet": "items", "data": {"a": 1}}, "`upsert` needs `naturalKey`"),
        ({"operation": "delete", "entitySet": "items", "id": GUID, "data": {"a": 1}}, "does not use `data`"),
        ({"operation": "batch"}, "`batch` needs `operations`"),
        (
            {"operation": "batch", "operations": [{"operation": "list", "entitySet": "items"}]},
            "operations[0]: a batch step is one of",
        ),
        (
            {
                "operation": "list",
                "entitySet": "items",
                "query": {"filter": [{"field": "a", "value": {"x": 1}}]},
            },
            "query.filter[0].value: a string, number, boolean or null",
        ),
        ({"operation": "list", "entitySet": "items", "deadline": 1893456000}, "deadline: an ISO-8601"),
        ({"operation": "list", "entitySet": "items", "jobId": "a/b"}, "jobId: String should match pattern"),
    ],
)
def test_a_bad_job_is_refused_with_the_field_and_what_was_expected(value: Any, expected: str) -> None:
    """Every rejection names the field path and the expectation."""
    assert any(expected in problem for problem in problems(value)), problems(value)


def test_a_rejection_never_echoes_the_offending_value() -> None:
    """Hostile or secret-looking input stays out of the reason."""
    marker = "SECRET-VALUE-" + "x" * 50
    reasons = problems(
        {"operation": "get", "entitySet": "customers", "id": marker, "correlationId": marker + " "}
    )
    assert not any(marker in reason for reason in reasons)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"operation": "list"}', "base64-encoded UTF-8 JSON (it looks like plain JSON)"),
        ("%%%", "base64-encoded UTF-8 JSON"),
        (base64.b64encode(b"\xff\xfe").decode(), "UTF-8 text"),
        (base64.b64encode(b"[1, 2]").decode(), "a JSON object (got a JSON array)"),
        (base64.b64encode(b"{nope").decode(), "a JSON document"),
        (base64.b64encode(b'{"a":' * 40 + b"1" + b"}" * 40).decode(), "nested at most 32"),
    ],
)
def test_a_message_that_is_not_a_json_object_is_refused_with_the_reason(text: str, expected: str) -> None:
    """Encoding problems are explained, not retried."""
    with pytest.raises(InvalidJobError, match="the message must be") as caught:
        decode(text)
    assert expected in str(caught.value)


def test_the_client_refuses_a_job_too_large_for_one_queue_message() -> None:
    """encode() refuses what would exceed the queue's 64 KiB, and decode() refuses such a message too."""
    job = Job(operation=Operation.CREATE, entity_set="items", data={"description": "x" * 4000})
    big = job.model_copy(update={"data": {f"f{i}": "x" * 4000 for i in range(13)}})
    assert len(encode(job)) < 64 * 1024
    with pytest.raises(InvalidJobError, match=f"at most {MAX_JOB_BYTES} bytes"):
        encode(big)
    raw = base64.b64encode(big.model_dump_json(by_alias=True).encode()).decode()
    with pytest.raises(InvalidJobError, match="at most"):
        decode(raw)


def test_a_rejected_job_keeps_a_valid_job_id_so_the_app_can_find_the_reason() -> None:
    """The rejection is recorded under the app's own id when that id is well-formed."""
    with pytest.raises(InvalidJobError) as caught:
        decode(wire({"jobId": "order-77", "operation": "get", "entitySet": "customers"}))
    assert caught.value.job_id == "order-77"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_either_a_job_or_an_invalid_job_error(text: str) -> None:
    """No input crashes the decoder with anything but InvalidJobError."""
    outcome = _outcome(text)
    assert isinstance(outcome, Job) or outcome.problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(["operation", "entitySet", "id", "data", "query", "operations", "jobId", "naturalKey"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys | st.text(max_size=8), json_values, max_size=6))
def test_any_json_object_is_either_a_job_or_an_invalid_job_error(value: dict[str, Any]) -> None:
    """Wrong types, unknown fields and odd unicode never escape as another exception."""
    outcome = _outcome(wire(value))
    assert isinstance(outcome, Job) or outcome.problems


def _outcome(text: str) -> Job | InvalidJobError:
    try:
        return decode(text)
    except InvalidJobError as error:
        return error

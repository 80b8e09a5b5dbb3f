"""The sandbox's JSON $batch executor without HTTP: what a failed snapshot batch answers, per configuration."""

from __future__ import annotations

import json
from typing import Any

from sandbox import SandboxConfig
from sandbox.bc.api import ApiRequest
from sandbox.bc.batch import run_batch
from sandbox.bc.control import BcControl
from sandbox.clock import SandboxClock

ROOT = "/v2.0/production/api/v2.0/"


def snapshot_batch(config: SandboxConfig, display_names: list[str]) -> tuple[BcControl, list[dict[str, Any]]]:
    """Run a snapshot batch of customer creates; return the control (for its store) and the inner responses."""
    control = BcControl(config, SandboxClock())
    operations = [
        {
            "method": "POST",
            "id": name,
            "url": f"companies({control.company_id})/customers",
            "body": {"displayName": name},
        }
        for name in display_names
    ]
    request = ApiRequest(
        method="POST",
        path="$batch",
        query={},
        headers={"isolation": "snapshot"},
        body=json.dumps({"requests": operations}).encode(),
        root_url=f"https://sandbox.test{ROOT.rstrip('/')}",
    )
    response = run_batch(control.api, control.store, request, ROOT, config)
    assert response.status == 200
    assert isinstance(response.body, dict)
    responses = response.body["responses"]
    assert isinstance(responses, list)
    return control, responses


def test_skipped_operations_can_be_answered_with_424() -> None:
    """bc_snapshot_batch_skipped_status=424 answers each operation after the failure with 424; none is run."""
    names = ["ok", "x" * 200, "later"]
    control, responses = snapshot_batch(SandboxConfig(bc_snapshot_batch_skipped_status=424), names)
    assert [(r["id"], r["status"]) for r in responses] == [("ok", 201), (names[1], 400), ("later", 424)]
    assert "error" in responses[2]["body"]
    assert not {"ok", "later"} & {row["displayName"] for row in control.records("customers")}


def test_skipped_operations_get_no_response_by_default() -> None:
    """By default BC's answer stops at the failing operation; the ones run before it keep their 201."""
    names = ["ok", "x" * 200, "later"]
    control, responses = snapshot_batch(SandboxConfig(), names)
    assert [(r["id"], r["status"]) for r in responses] == [("ok", 201), (names[1], 400)]
    assert responses[0]["body"]["displayName"] == "ok"
    assert "ok" not in {row["displayName"] for row in control.records("customers")}

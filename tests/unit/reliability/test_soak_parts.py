"""The soak's own parts: its plan covers every operation with markers nobody shares, and its sweep can fail."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime

from bcjobs import InvalidJobError, decode
from soak.config import SoakConfig
from soak.plan import MIX, Route, Seeds, build_plan, seed_counts
from soak.sweep import Evidence, sweep, token_secrets

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def seeds(config: SoakConfig) -> Seeds:
    counts = seed_counts(config)
    ids = {
        name: [f"{n:08d}-0000-4000-8000-{abs(hash(name)) % 10**12:012d}" for n in range(count)]
        for name, count in counts.items()
    }
    return Seeds(
        customers=ids["bc_seed_customers"],
        customer_numbers=[f"C{n:05d}" for n in range(counts["bc_seed_customers"])],
        items=ids["bc_seed_items"],
        item_numbers=[f"1{n:03d}" for n in range(counts["bc_seed_items"])],
        vendors=ids["bc_seed_vendors"],
        invoices=ids["bc_seed_sales_invoices"],
    )


def test_the_plan_sends_every_operation_valid_with_unique_markers_and_targets() -> None:
    """5,000 jobs: every operation in its share, each valid job accepted by the contract, no marker or target
    shared by two jobs, 5 % sent twice, 10 % through the front door, the malformed ones rejected."""
    config = SoakConfig.full()
    plan = build_plan(config, seeds(config), "abc123", NOW)
    distinct = plan.distinct()
    assert len(distinct) == config.jobs
    kinds = Counter(planned.kind for planned in distinct)
    assert set(kinds) == {*MIX, "malformed", "expired"}
    for kind, share in MIX.items():
        assert abs(kinds[kind] / config.jobs - share) < 0.01
    markers = [marker for planned in distinct for marker in planned.markers]
    assert len(markers) == len(set(markers))
    targets = [planned.target for planned in distinct if planned.target]
    assert len(targets) == len(set(targets))
    assert len({planned.key for planned in distinct if planned.key}) == len([p for p in distinct if p.key])
    duplicates = [planned for planned in plan.sends if planned.duplicate]
    assert 0.03 < len(duplicates) / config.jobs < 0.07
    assert all(planned.route is Route.QUEUE for planned in duplicates)
    assert 0.07 < sum(planned.route is Route.FRONT_DOOR for planned in distinct) / config.jobs < 0.13
    assert [planned.at for planned in plan.sends] == sorted(planned.at for planned in plan.sends)
    for planned in distinct:
        if planned.kind == "malformed":
            try:
                decode(planned.text())
            except InvalidJobError:
                continue
            raise AssertionError(f"malformed message {planned.text()[:40]} is valid")
        job = decode(planned.text())
        assert job.job_id == planned.key


def test_the_plan_is_the_same_for_the_same_seed() -> None:
    """A run can be repeated: the seed decides every job."""
    config = SoakConfig.short()
    first = build_plan(config, seeds(config), "r1", NOW)
    second = build_plan(config, seeds(config), "r1", NOW)
    assert [p.text() for p in first.sends] == [p.text() for p in second.sends]


def test_the_sweep_finds_each_kind_of_secret_and_names_only_its_kind() -> None:
    """The sweep can fail: a known value or a token-shaped text anywhere is reported by name and source."""
    jwt = "eyJ" + "a" * 20 + "." + "b" * 20 + "." + "c" * 20
    refresh = "0.A" + "r" * 120
    code = "1.A" + "c" * 120
    evidence = Evidence(
        {
            "worker logs": [f"x {jwt} y"],
            "Table rows": ['{"v": "s3cr3t-value"}', refresh],
            "HTTP answers": [f"<p>{code}</p>"],
        }
    )
    found = sweep(evidence, {"the BC client secret": "s3cr3t-value"})
    assert found == [
        "an authorization code (sandbox format) in HTTP answers",
        "the BC client secret in Table rows",
        "a refresh token (sandbox format) in Table rows",
        "a JWT (access or ID token) in worker logs",
    ]
    assert not any("s3cr3t" in text or jwt in text for text in found)
    assert sweep(Evidence({"worker logs": ["nothing here"]}), {"the BC client secret": "s3cr3t-value"}) == []


def test_every_token_of_every_key_vault_version_is_swept_for() -> None:
    """Each version's access and refresh token become named secrets; a version that is not JSON is one whole."""
    versions = [
        json.dumps({"access_token": "at-1-xxxxxxxx", "refresh_token": "rt-1-xxxxxxxx", "expires_on": 1}),
        json.dumps({"access_token": "at-2-xxxxxxxx", "refresh_token": "rt-2-xxxxxxxx"}),
        base64.b64encode(b"opaque").decode(),
    ]
    found = token_secrets(versions)
    assert sorted(found.values()) == sorted(
        ["at-1-xxxxxxxx", "rt-1-xxxxxxxx", "at-2-xxxxxxxx", "rt-2-xxxxxxxx", versions[2]]
    )

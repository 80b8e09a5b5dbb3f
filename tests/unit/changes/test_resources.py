"""Notification items read from the network: BC's resource shapes, collections' bounds, anything else refused."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from shared.changes.resources import parse_item, parse_resource

COMPANY = "11111111-1111-1111-1111-111111111111"
ENTITY = "22222222-2222-2222-2222-222222222222"


@pytest.mark.parametrize(
    "resource",
    [
        f"api/v2.0/companies({COMPANY})/customers({ENTITY})",
        f"/api/v2.0/companies({COMPANY})/customers({ENTITY})",
        f"https://api.businesscentral.dynamics.com/v2.0/t/production/api/v2.0/companies({COMPANY})/customers({ENTITY})",
    ],
)
def test_an_entity_resource_in_every_form_bc_uses(resource: str) -> None:
    target = parse_resource(resource)
    assert target is not None
    assert (target.api, target.company_id, target.entity_set, target.entity_id) == (
        "v2.0",
        UUID(COMPANY),
        "customers",
        UUID(ENTITY),
    )


def test_a_custom_api_resource_names_its_route() -> None:
    target = parse_resource(f"/api/contoso/logistics/v1.0/companies({COMPANY})/shipments({ENTITY})")
    assert target is not None
    assert (target.api, target.api_path, target.entity_set) == (
        "contoso/logistics/v1.0",
        "api/contoso/logistics/v1.0",
        "shipments",
    )


def test_a_collection_carries_bcs_lower_bound() -> None:
    """Codeunit 6154's shape: `?$filter=lastModifiedDateTime%20gt%20{first change - 50 ms}` (a + offset stays +)."""
    plain = parse_resource(
        f"/api/v2.0/companies({COMPANY})/customers?$filter=lastModifiedDateTime%20gt%202026-01-05T08:00:00.950Z"
    )
    offset = parse_resource(
        f"/api/v2.0/companies({COMPANY})/customers?$filter=lastModifiedDateTime%20gt%202026-01-05T09:00:00.950+01:00"
    )
    assert plain is not None
    assert offset is not None
    assert plain.entity_id is None
    assert plain.since == offset.since == datetime(2026, 1, 5, 8, 0, 0, 950_000, tzinfo=UTC)


def test_a_bare_collection_or_another_filter_reads_the_whole_set() -> None:
    bare = parse_resource(f"/api/v2.0/companies({COMPANY})/customers")
    other = parse_resource(f"/api/v2.0/companies({COMPANY})/customers?$filter=number%20gt%20'1'")
    assert bare is not None
    assert other is not None
    assert bare.since is other.since is None


@pytest.mark.parametrize(
    "raw",
    [
        {"changeType": "updated", "resource": f"/api/v2.0/companies({COMPANY})/customers"},
        {"changeType": "collection", "resource": f"/api/v2.0/companies({COMPANY})/customers({ENTITY})"},
        {"changeType": "renamed", "resource": f"/api/v2.0/companies({COMPANY})/customers({ENTITY})"},
        {"changeType": "updated", "resource": "/api/v2.0/customers"},
        {"changeType": "updated", "resource": 42},
        {"changeType": "updated", "resource": "/api/v2.0/companies(x)/customers(y)"},
        {"changeType": "updated", "resource": "a" * 5000},
    ],
)
def test_items_bc_never_sends_are_refused(raw: dict[str, object]) -> None:
    assert parse_item(raw) is None

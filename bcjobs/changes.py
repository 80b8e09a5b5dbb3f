"""The change feed's contract: one CloudEvents 1.0 event per entity version BC changed (structured JSON mode).

Published on the `bc-changes` queue (base64 of the JSON, like `bc-results`), kept in the change log
(`GET /api/changes`). The schema (`schemas/bc-change.v1.schema.json`) is generated from `ChangeEvent`.
CloudEvents: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md (context attributes; extension
names are lower-case letters and digits) and formats/json-format.md (structured mode).

Consumers dedupe by `id`: the queue is at-least-once, but one entity version never has two ids.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Defined with the other queue names, where a trigger binds it without building this module's models.
from bcjobs import NOTIFICATIONS_QUEUE as NOTIFICATIONS_QUEUE

CHANGES_QUEUE = "bc-changes"
EVENT_TYPE_PREFIX = "bcintegration"


class ChangeKind(StrEnum):
    """What happened to the entity (BC's `collection` is expanded into these)."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class ChangeOrigin(StrEnum):
    """Which path saw the change first: a BC notification, or the reconciliation pull that heals gaps."""

    WEBHOOK = "webhook"
    RECONCILIATION = "reconciliation"


def change_id(connection: str, company_id: str, entity_set: str, entity_id: str, version: str) -> str:
    """The stable id of one entity version: the same whichever path (webhook, repeat, reconciliation) saw it."""
    key = "|".join((connection, company_id.lower(), entity_set, entity_id.lower(), version))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def entity_version(etag: str | None, last_modified: str | None) -> str:
    """The `version` of `change_id` for an entity read from BC, the same on every path: its `@odata.etag` (BC's
    row version: it changes with every write, whatever `$select` asked for), else its `lastModifiedDateTime` as BC
    wrote it (an entity without an ETag, e.g. some custom API pages)."""
    if etag:
        return etag
    if last_modified:
        return last_modified
    raise ValueError("an entity without @odata.etag or lastModifiedDateTime has no version")


def tombstone_version() -> str:
    """The version of a delete: BC ids (SystemId) are never reused, so an entity is deleted once."""
    return "deleted"


class ChangeEvent(BaseModel):
    """One change as a CloudEvent (structured mode). Extension attributes carry the BC specifics."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="stable per entity version: dedupe by it")
    source: str = Field(
        description="/connections/{connection}/environments/{environment}/companies/{companyId}"
    )
    type: str = Field(description="bcintegration.{entitySet}.{created|updated|deleted}")
    subject: str = Field(description="the entity's id (SystemId)")
    time: datetime = Field(
        description="BC's lastModifiedDateTime of this version (the delete's notification time)"
    )
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any] | None = Field(
        default=None,
        description="{'reference': the entity's URL, 'entity': {...} when the watch includes data and the event "
        "still fits a queue message (else 'entityOmitted' says why)}; absent for deletes",
    )
    bcconnection: str
    bcenvironment: str
    bccompany: str
    bcentityset: str
    bcchange: ChangeKind
    bcetag: str | None = Field(default=None, description="the entity's @odata.etag for this version")
    bcorigin: ChangeOrigin
    bcecho: str | None = Field(
        default=None, description="the jobId whose own write produced this version (a two-way sync drops it)"
    )

    def to_json(self) -> str:
        """The structured-mode JSON (unset optional attributes left out, as CloudEvents allows)."""
        return self.model_dump_json(exclude_none=True)

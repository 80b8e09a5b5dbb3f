"""A watch: which entity set of which company of a connection the feed follows, and how."""

from __future__ import annotations

from typing import Annotated, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

from bcjobs.models import IDENTIFIER_PATTERN

_NAME = r"^[a-z0-9-]{1,40}$"
_CUSTOM_API = r"^[A-Za-z_][A-Za-z0-9_]{0,79}/[A-Za-z_][A-Za-z0-9_]{0,79}/(v\d+\.\d+|beta)$"


class Watch(BaseModel):
    """Follow `entitySet` of `companyId` (the connection's default company when absent) on `connection`."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    connection: Annotated[str, StringConstraints(pattern=_NAME)]
    name: Annotated[str, StringConstraints(pattern=_NAME)]
    entity_set: Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
    company_id: UUID | None = None
    api: Annotated[str, StringConstraints(pattern=_CUSTOM_API)] | None = None  # publisher/group/version
    include_data: bool = False
    select: tuple[Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)], ...] | None = None
    enabled: bool = True

    def api_path(self) -> str:
        """`api/v2.0` or `api/{publisher}/{group}/{version}`."""
        return f"api/{self.api}" if self.api else "api/v2.0"

    def resource(self, company_id: UUID) -> str:
        """The subscription's `resource`: `/api/v2.0/companies({id})/{entitySet}` (reference (a), A1)."""
        return f"/{self.api_path()}/companies({company_id})/{self.entity_set}"


class WatchDirectory(Protocol):
    """The watches of a connection (cached per process: an admin's change is seen within 30 s)."""

    async def watches(self, connection: str) -> list[Watch]:
        """Every watch of `connection`, enabled or not, by name."""
        ...

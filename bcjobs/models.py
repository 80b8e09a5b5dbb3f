"""The v1 job contract: what an application puts on the `bc-jobs` queue (one definition for app and product).

Field names on the wire are camelCase (`jobId`, `entitySet`, `naturalKey`); Python attributes are snake_case.
Every string that reaches BC in a URL is checked here against OData's identifier rules, and filter values are
typed literals, never OData text: the product renders them through its escaping query builder.
The published JSON Schema (`schemas/bc-job.v1.schema.json`) is generated from `Job` (`python -m bcjobs.schema`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

SCHEMA_VERSION = 1
JOB_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"
# OData (CSDL) simple identifier: a letter or _, then letters, digits or _.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
MAX_BATCH_OPERATIONS = 1000  # per job; sent as $batch requests of at most 100 (an atomic batch: one request)
MAX_ATOMIC_OPERATIONS = 100

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
# A filter value: a typed literal. Strings stay strings (quoted and escaped by the product), never OData text.
Scalar = str | int | float | bool | None
FieldValues = dict[Identifier, JsonValue]


class _JobModel(BaseModel):
    """A job as sent: unknown fields are refused (a misspelt option must not be ignored)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_max_length=4096,
    )


class Operation(StrEnum):
    """What a job does in BC."""

    GET = "get"
    LIST = "list"
    CREATE = "create"
    UPDATE = "update"
    UPSERT = "upsert"
    DELETE = "delete"
    ACTION = "action"
    BATCH = "batch"


WRITES = frozenset({Operation.CREATE, Operation.UPDATE, Operation.UPSERT, Operation.DELETE, Operation.ACTION})


class Operator(StrEnum):
    """Filter operators (OData's comparison operators and string functions, plus `in`)."""

    EQ = "eq"
    NE = "ne"
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    STARTSWITH = "startswith"
    ENDSWITH = "endswith"
    CONTAINS = "contains"
    IN = "in"


class Condition(_JobModel):
    """One filter condition: `field operator value`; conditions of a query are combined with `and`."""

    field: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")]
    operator: Operator = Operator.EQ
    value: Scalar | list[Scalar] = Field(description="a literal; a list for `in`")

    @field_validator("value", mode="before")
    @classmethod
    def _literal_only(cls, value: object) -> object:
        scalars = (str, int, float, bool, type(None))
        if isinstance(value, scalars) or (
            isinstance(value, list) and all(isinstance(v, scalars) for v in value)
        ):
            return value
        raise ValueError("a string, number, boolean or null (a list of them for `in`)")

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Self:
        is_list = isinstance(self.value, list)
        if (self.operator is Operator.IN) != is_list:
            raise ValueError("`in` takes a list of values; every other operator takes one value")
        text_only = (Operator.STARTSWITH, Operator.ENDSWITH, Operator.CONTAINS)
        if self.operator in text_only and not isinstance(self.value, str):
            raise ValueError(f"`{self.operator.value}` takes a string value")
        if is_list and not self.value:
            raise ValueError("`in` needs at least one value")
        return self


class Query(_JobModel):
    """Query options for `get` and `list`. Never raw OData: the product builds the query string."""

    filter: list[Condition] = Field(default_factory=list, max_length=50)
    select: list[Identifier] = Field(default_factory=list, max_length=100)
    expand: list[Identifier] = Field(default_factory=list, max_length=10)
    order_by: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*( (asc|desc))?$")]] = (
        Field(default_factory=list, max_length=10)
    )
    top: int | None = Field(default=None, ge=1, le=20000)


class CustomApi(_JobModel):
    """A custom API page: `api/{publisher}/{group}/{version}`."""

    publisher: Identifier
    group: Identifier
    version: Annotated[str, StringConstraints(pattern=r"^v\d+\.\d+$|^beta$")] = "v1.0"


class Parent(_JobModel):
    """The document a collection belongs to, e.g. the sales order whose `salesOrderLines` are meant."""

    entity_set: Identifier
    id: UUID


class _Target(_JobModel):
    """The fields that say where in BC and with what: shared by a job and each step of a batch."""

    parent: Parent | None = None
    api: CustomApi | None = None
    id: UUID | None = None
    data: FieldValues | None = None
    # Sent as the If-Match header: visible ASCII only (an entity-tag's characters, RFC 9110 §8.8.3).
    etag: (
        Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")] | None
    ) = None
    natural_key: FieldValues | None = Field(default=None, max_length=5)
    query: Query | None = None
    action: (
        Annotated[str, StringConstraints(pattern=r"^(Microsoft\.NAV\.)?[A-Za-z_][A-Za-z0-9_]{0,127}$")] | None
    ) = None


class Step(_Target):
    """One BC operation on one entity set: a job's own shape, and each entry of a batch's `operations`."""

    operation: Operation
    entity_set: Identifier

    @model_validator(mode="after")
    def _fields_fit_the_operation(self) -> Self:
        required, allowed = _FIELDS[self.operation]
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"`{self.operation.value}` needs {_names(missing)}")
        present = {name for name in _OPTIONAL if getattr(self, name) is not None}
        unused = sorted(present - set(required) - set(allowed))
        if unused:
            raise ValueError(f"`{self.operation.value}` does not use {_names(unused)}")
        if self.data is not None and not self.data:
            raise ValueError("`data` must hold at least one field")
        if self.natural_key is not None and not _scalar_key(self.natural_key):
            raise ValueError("`naturalKey` must map one to five fields to strings, numbers or booleans")
        return self

    @property
    def action_name(self) -> str | None:
        """The bound action without its `Microsoft.NAV.` prefix (the client adds it)."""
        return self.action.removeprefix("Microsoft.NAV.") if self.action else None

    @property
    def is_write(self) -> bool:
        """True when the step changes data in BC."""
        return self.operation in WRITES


_OPTIONAL = ("id", "data", "etag", "natural_key", "query", "action")
# operation -> (required, allowed besides them)
_FIELDS: dict[Operation, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Operation.GET: (("id",), ("query",)),
    Operation.LIST: ((), ("query",)),
    Operation.CREATE: (("data",), ("natural_key",)),
    Operation.UPDATE: (("id", "data"), ("etag",)),
    Operation.UPSERT: (("natural_key", "data"), ()),
    Operation.DELETE: (("id",), ("etag",)),
    Operation.ACTION: (("id", "action"), ("etag",)),
    Operation.BATCH: ((), ()),
}
BATCH_STEP_OPERATIONS = frozenset(
    {Operation.GET, Operation.CREATE, Operation.UPDATE, Operation.DELETE, Operation.ACTION}
)


def _names(fields: list[str]) -> str:
    return ", ".join(f"`{to_camel(name)}`" for name in fields)


def _scalar_key(key: FieldValues) -> bool:
    return 0 < len(key) <= 5 and all(isinstance(v, str | int | float | bool) for v in key.values())


class Job(_Target):
    """One BC job (schema version 1). A `batch` job carries `operations`; every other job is one step."""

    schema_version: Literal[1] = 1
    job_id: JobId | None = Field(default=None, description="idempotency key; assigned when absent")
    operation: Operation
    entity_set: Identifier | None = None
    operations: list[Step] | None = Field(default=None, min_length=1, max_length=MAX_BATCH_OPERATIONS)
    atomic: bool = False
    connection: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,40}$")] | None = Field(
        default=None,
        description="the BC connection to run on (GET /api/connections lists them); the deployment's own "
        "connection (BC_CONNECTION_NAME) when absent",
    )
    company: Annotated[str, StringConstraints(min_length=1, max_length=250)] | None = Field(
        default=None, description="company name or id; the product's configured company when absent"
    )
    correlation_id: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,200}$")] | None = None
    deadline: AwareDatetime | None = Field(
        default=None, description="ISO-8601 with offset; unfinished then: expired"
    )

    @field_validator("deadline", mode="before")
    @classmethod
    def _iso_text_only(cls, value: object) -> object:
        # pydantic would also read a bare number as seconds since 1970; the contract says ISO-8601.
        if value is None or (isinstance(value, str) and _ISO_DATETIME.match(value)):
            return value
        raise ValueError("an ISO-8601 date-time with an offset, e.g. 2026-12-31T23:00:00Z")

    @model_validator(mode="after")
    def _shape_fits_the_operation(self) -> Self:
        if self.operation is Operation.BATCH:
            self._check_batch()
        else:
            if self.entity_set is None:
                raise ValueError(f"`{self.operation.value}` needs `entitySet`")
            if self.operations is not None or self.atomic:
                raise ValueError("`operations` and `atomic` belong to `batch` jobs only")
            self.step()  # runs the step's own checks
        return self

    def _check_batch(self) -> None:
        if self.operations is None:
            raise ValueError("`batch` needs `operations`")
        stray = [name for name in ("entity_set", *_OPTIONAL) if getattr(self, name) is not None]
        if stray:
            raise ValueError(f"`batch` takes its steps in `operations`, not {_names(stray)}")
        for index, step in enumerate(self.operations):
            if step.operation not in BATCH_STEP_OPERATIONS:
                raise ValueError(
                    f"operations[{index}]: a batch step is one of get, create, update, delete, action"
                )
        if self.atomic and len(self.operations) > MAX_ATOMIC_OPERATIONS:
            raise ValueError(f"an atomic batch holds at most {MAX_ATOMIC_OPERATIONS} operations")
        if len({step.api for step in self.operations}) > 1:
            raise ValueError("all operations of a batch must use the same API (`api`)")

    def step(self) -> Step:
        """This job as one step (not for `batch` jobs)."""
        if self.operation is Operation.BATCH or self.entity_set is None:
            raise ValueError("a batch job has no single step")
        return Step(
            operation=self.operation,
            entity_set=self.entity_set,
            parent=self.parent,
            api=self.api,
            id=self.id,
            data=self.data,
            etag=self.etag,
            natural_key=self.natural_key,
            query=self.query,
            action=self.action,
        )

    @property
    def steps(self) -> tuple[Step, ...]:
        """The job's steps: one, or a batch's operations."""
        return tuple(self.operations) if self.operations is not None else (self.step(),)

    @property
    def is_write(self) -> bool:
        """True when any step changes data in BC."""
        return any(step.is_write for step in self.steps)

    def with_job_id(self, job_id: str) -> Job:
        """The same job with its id filled in."""
        return self.model_copy(update={"job_id": job_id})

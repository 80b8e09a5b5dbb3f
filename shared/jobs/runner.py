"""Runs one job's steps against BC through the shared client; returns what it achieved or raises BC's error.

Writes are wrapped so that an answer lost after sending (timeout, dropped connection, 5xx after the request left)
comes out as AmbiguousWriteError: the caller decides between reconciling by natural key and reporting it, and
never resends blindly. A run that follows an ambiguous one (`EarlierRuns.ambiguous`) reconciles first: `create` looks
its natural key up, `delete` takes 404 as done, `update` compares the fields after a stale-ETag refusal. A DELETE's
404 also counts as done when this run's own DELETE lost its answer and the client repeated it: the runner asks the
run's `AnswerTrail` (the processor's audit buffer, which the BC client fills).
Without the job's `etag`, update, upsert and delete send `If-Match: *` (shared.bc.client.ANY_VERSION): the contract's
last writer wins, and no change between a read and the write can make BC refuse it.
A non-atomic batch is sent one $batch request (100 operations, BC's limit) at a time, and the next one only while the
run's time budget has room for it (`Budget`): otherwise TimeBudgetSpentError carries the items done so far, and the
processor continues the batch in a new delivery.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from bcjobs import ItemOutcome, Job, Operation, ResultSummary, Step
from bcjobs.models import Condition, CustomApi, Operator
from bcjobs.models import Query as JobQuery
from shared.bc import (
    STANDARD_API,
    ApiRoute,
    AtomicBatchFailedError,
    BatchIncompleteError,
    BatchOperation,
    BatchResult,
    BusinessCentralClient,
    BusinessCentralError,
    Entity,
    EntityChangedError,
    EntityKey,
    EntitySet,
    Filter,
    Method,
    NotFoundError,
    ODataQuery,
    QueryError,
    all_of,
    odata_field,
)
from shared.bc.batch import MAX_BATCH_OPERATIONS, split
from shared.bc.retry import surely_unprocessed
from shared.clock import Clock, SystemClock
from shared.jobs.errors import (
    AmbiguousWriteError,
    JobError,
    NaturalKeyNotUniqueError,
    RetriableBatchItemsError,
    TimeBudgetSpentError,
)
from shared.jobs.outcomes import error_info

LIST_LIMIT = 10_000  # records a `list` job reads at most without `top`
ENTITIES_BUDGET = (
    20_000  # characters of records kept in a result (the report must fit in a 64 KiB queue message)
)


@dataclass
class Budget:
    """The time one run may take, and the batch items known so far (kept if the run is cut off mid-request).

    A batch sends its next $batch request only while `reserve` (one request's timeout) is left; the processor
    cuts the whole run off at `ends_at`. Without limits (the default) nothing stops a run.
    """

    clock: Clock = field(default_factory=SystemClock)
    ends_at: float = math.inf  # epoch seconds (Clock.time)
    reserve: float = 0.0
    items: dict[int, ItemOutcome] = field(default_factory=dict)

    def left(self) -> float:
        """Seconds until the run is cut off."""
        return self.ends_at - self.clock.time()

    def has_room(self) -> bool:
        """True while one more request fits in the budget."""
        return self.left() >= self.reserve


@dataclass(frozen=True, slots=True)
class EarlierRuns:
    """What earlier runs of the job left behind."""

    ambiguous: bool = False  # a write of one of them may have reached BC unanswered: reconcile first
    items: Mapping[int, ItemOutcome] = field(default_factory=dict)  # batch items already done


class AnswerTrail(Protocol):
    """This run's BC requests so far, as the BC client recorded them (the processor's AuditBuffer)."""

    def answer_lost_before(self, method: str, path_end: str) -> bool:
        """True when this run already sent `method` to a path ending in `path_end` and got no answer, or one
        after which BC may have acted."""
        ...


class JobRunner:
    """Executes jobs with one BusinessCentralClient (shared by every job of the process)."""

    def __init__(self, client: BusinessCentralClient) -> None:
        self._client = client

    @property
    def client(self) -> BusinessCentralClient:
        """The lane's BC client: the change feed reads and subscribes through it (same token, same throttle)."""
        return self._client

    async def run(self, job: Job, earlier: EarlierRuns, budget: Budget, trail: AnswerTrail) -> ResultSummary:
        """Do the job once within `budget`; BC's errors (and AmbiguousWriteError) propagate."""
        company = await self._company(job.company)
        if job.operations is not None:
            return await self._batch(job.operations, job.atomic, company, earlier, budget)
        return await self._step(job.step(), company, earlier, trail)

    async def _company(self, company: str | None) -> UUID:
        if company is None:
            return await self._client.company_id()
        try:
            return UUID(company)
        except ValueError:
            return (await self._client.company(name=company)).id

    async def _step(
        self, step: Step, company: UUID, earlier: EarlierRuns, trail: AnswerTrail
    ) -> ResultSummary:
        target = _entity_set(step, company)
        match step.operation:
            case Operation.GET:
                return _read(await self._client.get(_key(target, step), _query(step.query)))
            case Operation.LIST:
                return await self._list(target, step.query)
            case Operation.CREATE:
                return await self._create(target, step, earlier)
            case Operation.UPSERT:
                return await self._upsert(target, step)
            case Operation.UPDATE:
                return await self._update(_key(target, step), step, earlier)
            case Operation.DELETE:
                return await self._delete(_key(target, step), step, earlier, trail)
            case _:  # Operation.ACTION, a bound action (a batch never gets here: run() sends it to _batch)
                await _ambiguous_if_lost(
                    self._client.action(_key(target, step), str(step.action_name), etag=step.etag)
                )
                return ResultSummary(id=str(step.id))

    async def _list(self, target: EntitySet, query: JobQuery | None) -> ResultSummary:
        limit = query.top if query is not None and query.top is not None else LIST_LIMIT
        found = await self._client.list(target, _query(query, with_top=False), limit=limit)
        return _entities_summary(found)

    async def _create(self, target: EntitySet, step: Step, earlier: EarlierRuns) -> ResultSummary:
        if earlier.ambiguous and step.natural_key:
            existing = await self._find(target, step.natural_key)
            if existing is not None:
                return _written(existing, reconciled=True)
        return _written(await _ambiguous_if_lost(self._client.create(target, _with_key(step))))

    async def _upsert(self, target: EntitySet, step: Step) -> ResultSummary:
        existing = await self._find(target, step.natural_key or {})
        if existing is None:
            # An ambiguous create here is safe to retry: the next run looks the key up first.
            return _written(await self._client.create(target, _with_key(step)), created=True)
        key = target.key(existing.id) if existing.id else None
        if key is None:
            raise NaturalKeyNotUniqueError("the record found by natural key has no id")
        # The record was found by natural key, not read by the app: last writer wins, like update without etag.
        updated = await _ambiguous_if_lost(self._client.update(key, step.data or {}))
        return _written(updated, created=False)

    async def _update(self, key: EntityKey, step: Step, earlier: EarlierRuns) -> ResultSummary:
        try:
            return _written(
                await _ambiguous_if_lost(self._client.update(key, step.data or {}, etag=step.etag))
            )
        except EntityChangedError:
            if not earlier.ambiguous:
                raise
            current = await self._client.get(key, primary=True)  # decides: replicas lag (shared/bc/sender.py)
            if not _holds(current, step.data or {}):
                raise
            return _written(current, reconciled=True)

    async def _delete(
        self, key: EntityKey, step: Step, earlier: EarlierRuns, trail: AnswerTrail
    ) -> ResultSummary:
        try:
            await _ambiguous_if_lost(self._client.delete(key, etag=step.etag))
        except NotFoundError:
            # A 404 after an earlier run's lost write, or after this run's own DELETE lost its answer and the
            # client repeated it within the request (DELETE is idempotent): that DELETE did it.
            if not (earlier.ambiguous or trail.answer_lost_before("DELETE", f"({key.id})")):
                raise
            return ResultSummary(id=str(key.id), reconciled=True)
        return ResultSummary(id=str(key.id))

    async def _find(self, target: EntitySet, natural_key: Mapping[str, Any]) -> Entity | None:
        conditions = [odata_field(name).eq(value) for name, value in natural_key.items()]
        # Decides create or update: from BC's primary database, a lagging replica could miss a new record.
        query = ODataQuery(filter=all_of(*conditions))
        found = await self._client.list(target, query, limit=2, primary=True)
        if len(found) > 1:
            raise NaturalKeyNotUniqueError(
                f"more than one {target.name} record matches the natural key ({', '.join(natural_key)})",
                code="natural_key_not_unique",
            )
        return found[0] if found else None

    async def _batch(
        self, steps: Sequence[Step], atomic: bool, company: UUID, earlier: EarlierRuns, budget: Budget
    ) -> ResultSummary:
        todo = [
            index for index in range(len(steps)) if index not in earlier.items or earlier.items[index].error
        ]
        items = budget.items  # updated as requests finish: what a cut-off run still knows
        items.update({index: item for index, item in earlier.items.items() if item.error is None})
        if atomic:
            return await self._atomic(steps, todo, company, items)
        operations = [_batch_operation(steps[index], company) for index in todo]
        # One API route for all, checked before anything is sent (the client checks each request only).
        groups = split(operations, MAX_BATCH_OPERATIONS, atomic=False)
        errors: list[BusinessCentralError] = []
        for number, start in enumerate(range(0, len(todo), MAX_BATCH_OPERATIONS)):
            if not budget.has_room():
                raise _out_of_time(len(steps), items, earlier.items)
            chunk = todo[start : start + MAX_BATCH_OPERATIONS]
            results = await self._requests(groups[number], chunk, items, first=number == 0)
            items.update(_item_outcomes(chunk, results))
            errors += [result.error for result in results if result.error is not None]
        if any(item.error is not None and item.error.retriable for item in items.values()):
            raise RetriableBatchItemsError(dict(items), errors[0])
        return _batch_summary(len(steps), items)

    async def _requests(
        self,
        operations: Sequence[BatchOperation],
        chunk: Sequence[int],
        items: dict[int, ItemOutcome],
        *,
        first: bool,
    ) -> tuple[BatchResult, ...]:
        """One $batch request's operations. When it fails after earlier requests of this run were committed, the
        batch stops as the client's own split batch does (BatchIncompleteError): the finished items are kept."""
        try:
            results: tuple[BatchResult, ...] = await _ambiguous_if_lost(self._client.batch(operations))
        except (
            BatchIncompleteError
        ) as stopped:  # split further by a client with a smaller max_batch_operations
            items.update(_item_outcomes(chunk, stopped.completed))
            raise _stopped(items, stopped, may_have_applied=stopped.failed_may_have_applied) from stopped
        except (AmbiguousWriteError, BusinessCentralError) as failed:
            if first:
                raise
            cause = failed.cause if isinstance(failed, AmbiguousWriteError) else failed
            raise _stopped(items, cause, may_have_applied=not surely_unprocessed(cause)) from failed
        return results

    async def _atomic(
        self, steps: Sequence[Step], todo: Sequence[int], company: UUID, items: dict[int, ItemOutcome]
    ) -> ResultSummary:
        """All or nothing, in one request (an atomic batch never continues in another delivery)."""
        operations = [_batch_operation(steps[index], company) for index in todo]
        try:
            results = await _ambiguous_if_lost(self._client.batch(operations, atomic=True))
        except AtomicBatchFailedError as failed:
            if failed.cause.retriable:
                raise
            return _batch_summary(len(steps), {**items, **_item_outcomes(todo, failed.results)})
        items.update(_item_outcomes(todo, results))
        retriable = [item for item in items.values() if item.error is not None and item.error.retriable]
        if retriable:
            raise RetriableBatchItemsError(dict(items), _first_error(results))
        return _batch_summary(len(steps), items)


async def _ambiguous_if_lost(call: Any) -> Any:
    """Await a BC write; a failure that may have reached BC becomes AmbiguousWriteError."""
    try:
        return await call
    except BusinessCentralError as error:
        if error.retriable and not surely_unprocessed(error):
            raise AmbiguousWriteError(error) from error
        raise


def _entity_set(step: Step, company: UUID) -> EntitySet:
    api = _api(step.api)
    if step.parent is None:
        return EntitySet(step.entity_set, api=api, company_id=company)
    parent = EntitySet(step.parent.entity_set, api=api, company_id=company).key(step.parent.id)
    return parent.child(step.entity_set)


def _api(api: CustomApi | None) -> ApiRoute:
    return STANDARD_API if api is None else ApiRoute(api.publisher, api.group, api.version)


def _key(target: EntitySet, step: Step) -> EntityKey:
    if step.id is None:
        raise QueryError(f"`{step.operation.value}` needs an id")  # the contract already guarantees one
    return target.key(step.id)


def _query(query: JobQuery | None, *, with_top: bool = True) -> ODataQuery:
    if query is None:
        return ODataQuery()
    conditions = [_condition(condition) for condition in query.filter]
    return ODataQuery(
        filter=all_of(*conditions) if conditions else None,
        select=tuple(query.select),
        expand=tuple(query.expand),
        orderby=tuple(query.order_by),
        top=query.top if with_top else None,
    )


def _condition(condition: Condition) -> Filter:
    target, value = odata_field(condition.field), condition.value
    if isinstance(value, list):
        return target.in_(value)
    match condition.operator:
        case Operator.NE:
            return target.ne(value)
        case Operator.GT:
            return target.gt(value)
        case Operator.GE:
            return target.ge(value)
        case Operator.LT:
            return target.lt(value)
        case Operator.LE:
            return target.le(value)
        case Operator.STARTSWITH:
            return target.startswith(str(value))
        case Operator.ENDSWITH:
            return target.endswith(str(value))
        case Operator.CONTAINS:
            return target.contains(str(value))
        case _:
            return target.eq(value)


def _with_key(step: Step) -> dict[str, Any]:
    """The values to create: the natural key's fields are part of the record."""
    return {**(step.natural_key or {}), **(step.data or {})}


def _holds(entity: Entity, data: Mapping[str, Any]) -> bool:
    return all(
        entity.values.get(name) == value for name, value in data.items() if not isinstance(value, list)
    )


def _read(entity: Entity) -> ResultSummary:
    return _entities_summary((entity,)).model_copy(update={"id": _id(entity), "etag": entity.etag})


def _written(entity: Entity, *, reconciled: bool = False, created: bool | None = None) -> ResultSummary:
    number = entity.values.get("number")
    return ResultSummary(
        id=_id(entity),
        number=number if isinstance(number, str) else None,
        etag=entity.etag,
        reconciled=reconciled,
        created=created,
    )


def _id(entity: Entity) -> str | None:
    return str(entity.id) if entity.id else None


def _entities_summary(found: Sequence[Entity]) -> ResultSummary:
    kept: list[dict[str, Any]] = []
    used = 0
    for entity in found:
        size = len(repr(dict(entity.values)))
        if used + size > ENTITIES_BUDGET:
            return ResultSummary(count=len(found), entities=kept, truncated=True)
        kept.append({"@odata.etag": entity.etag, **entity.values} if entity.etag else dict(entity.values))
        used += size
    return ResultSummary(count=len(found), entities=kept)


def _batch_operation(step: Step, company: UUID) -> BatchOperation:
    target = _entity_set(step, company)
    match step.operation:
        case Operation.CREATE:
            return BatchOperation(Method.POST, target, body=_with_key(step))
        case Operation.GET:
            return BatchOperation(Method.GET, _key(target, step))
        case Operation.UPDATE:
            return BatchOperation(Method.PATCH, _key(target, step), body=step.data, etag=step.etag or "*")
        case Operation.DELETE:
            return BatchOperation(Method.DELETE, _key(target, step), etag=step.etag or "*")
        case _:  # Operation.ACTION, a bound action (the contract allows no list, upsert or batch in a batch)
            return BatchOperation(Method.POST, _key(target, step), action=step.action_name, etag=step.etag)


def _item_outcomes(indexes: Sequence[int], results: Sequence[BatchResult]) -> dict[int, ItemOutcome]:
    """One $batch request's results as item outcomes, keyed by the index of the job's operation."""
    return {index: _item_outcome(index, result) for index, result in zip(indexes, results, strict=False)}


def _item_outcome(index: int, result: BatchResult) -> ItemOutcome:
    entity = result.entity
    return ItemOutcome(
        index=index,
        status=result.status,
        id=_id(entity) if entity else None,
        etag=entity.etag if entity else None,
        rolled_back=result.rolled_back,
        error=error_info(result.error) if result.error is not None else None,
    )


def _stopped(
    items: dict[int, ItemOutcome], cause: BusinessCentralError, *, may_have_applied: bool
) -> JobError | BusinessCentralError:
    """A batch stopped after some of its requests were committed: the items so far, and why it stopped."""
    if may_have_applied:
        return AmbiguousWriteError(cause, items=dict(items))
    return RetriableBatchItemsError(dict(items), cause)


def _out_of_time(
    total: int, items: Mapping[int, ItemOutcome], before: Mapping[int, ItemOutcome]
) -> TimeBudgetSpentError:
    """The budget has no room for the next request; `before`: the items earlier runs finished."""
    done = sum(1 for item in items.values() if item.error is None)
    progressed = done > sum(1 for item in before.values() if item.error is None)
    message = f"the run's time budget ran out with {done} of {total} operations done"
    return TimeBudgetSpentError(message, items=dict(items), progressed=progressed)


def _first_error(results: Sequence[BatchResult]) -> BusinessCentralError:
    return next(result.error for result in results if result.error is not None)


def _batch_summary(total: int, items: Mapping[int, ItemOutcome]) -> ResultSummary:
    ordered = [items[index] for index in sorted(items)]
    return ResultSummary(count=total, items=ordered)

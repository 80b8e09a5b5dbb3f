"""Business Central API client: httpx + token seam, typed errors, OData, $batch, retry policy, shared throttle.

Typical wiring (the job layer does this once per process):

    store = TableCoordinationStore.from_settings(settings.storage)
    throttle = build_throttle(settings, store)           # one per process and identity
    client = build_client(settings, token_manager, throttle, recorder=audit)
    customers = EntitySet("customers")
    found = await client.list(customers, ODataQuery(filter=odata_field("displayName").eq(user_text)))
"""

from shared.bc.client import BusinessCentralClient
from shared.bc.errors import (
    AtomicBatchFailedError,
    AuthenticationError,
    AuthorizationError,
    BatchError,
    BatchIncompleteError,
    BusinessCentralError,
    CompanyNotFoundError,
    ConflictError,
    Correlation,
    EntityChangedError,
    NotFoundError,
    QueryError,
    RequestTimeoutError,
    RequestValidationError,
    ServerError,
    ServiceUnavailableError,
    ThrottledError,
    ThrottleStorageError,
    TokenAcquisitionError,
    TokenRefusedError,
    UnexpectedResponseError,
    UnsafeNextLinkError,
)
from shared.bc.factory import (
    budget_key,
    build_client,
    build_throttle,
    endpoint_from_settings,
    http_client_from_settings,
)
from shared.bc.models import (
    STANDARD_API,
    ApiRoute,
    BatchOperation,
    BatchResult,
    BcEndpoint,
    Company,
    Entity,
    EntityKey,
    EntitySet,
    JsonObject,
    JsonValue,
    Method,
    Page,
)
from shared.bc.odata import Field, Filter, ODataQuery, all_of, any_of, literal, odata_field
from shared.bc.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from shared.bc.sender import BcRequest, Interaction, MemoryRecorder, NullRecorder, Recorder, RequestSender
from shared.bc.throttle import SharedThrottle, ThrottleConfig
from shared.bc.throttle.table_store import TableCoordinationStore

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "STANDARD_API",
    "ApiRoute",
    "AtomicBatchFailedError",
    "AuthenticationError",
    "AuthorizationError",
    "BatchError",
    "BatchIncompleteError",
    "BatchOperation",
    "BatchResult",
    "BcEndpoint",
    "BcRequest",
    "BusinessCentralClient",
    "BusinessCentralError",
    "Company",
    "CompanyNotFoundError",
    "ConflictError",
    "Correlation",
    "Entity",
    "EntityChangedError",
    "EntityKey",
    "EntitySet",
    "Field",
    "Filter",
    "Interaction",
    "JsonObject",
    "JsonValue",
    "MemoryRecorder",
    "Method",
    "NotFoundError",
    "NullRecorder",
    "ODataQuery",
    "Page",
    "QueryError",
    "Recorder",
    "RequestSender",
    "RequestTimeoutError",
    "RequestValidationError",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "SharedThrottle",
    "TableCoordinationStore",
    "ThrottleConfig",
    "ThrottleStorageError",
    "ThrottledError",
    "TokenAcquisitionError",
    "TokenRefusedError",
    "UnexpectedResponseError",
    "UnsafeNextLinkError",
    "all_of",
    "any_of",
    "budget_key",
    "build_client",
    "build_throttle",
    "endpoint_from_settings",
    "http_client_from_settings",
    "literal",
    "odata_field",
]

"""The throttle shared by every process and instance that calls BC as one identity.

The only CoordinationStore shipped is TableCoordinationStore: an in-memory store would silently give every
instance the whole budget, so the one used by tests lives with the test doubles (tests/fakes/coordination.py).
"""

from shared.bc.throttle.coordination import (
    CoordinationState,
    CoordinationStore,
    Member,
    VersionedState,
)
from shared.bc.throttle.gate import SharedThrottle
from shared.bc.throttle.plan import Allocation, ThrottleConfig, allocate, fallback_allocation

__all__ = [
    "Allocation",
    "CoordinationState",
    "CoordinationStore",
    "Member",
    "SharedThrottle",
    "ThrottleConfig",
    "VersionedState",
    "allocate",
    "fallback_allocation",
]

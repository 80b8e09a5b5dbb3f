"""The throttle shared by every process and instance that calls BC as one identity."""

from shared.bc.throttle.coordination import (
    CoordinationState,
    CoordinationStore,
    Member,
    MemoryCoordinationStore,
    VersionedState,
)
from shared.bc.throttle.plan import Allocation, ThrottleConfig, allocate, fallback_allocation
from shared.bc.throttle.shared import SharedThrottle

__all__ = [
    "Allocation",
    "CoordinationState",
    "CoordinationStore",
    "Member",
    "MemoryCoordinationStore",
    "SharedThrottle",
    "ThrottleConfig",
    "VersionedState",
    "allocate",
    "fallback_allocation",
]

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
from shared.bc.throttle.low_priority import LowPriority
from shared.bc.throttle.plan import (
    HEARTBEAT_SECONDS,
    Share,
    ThrottleConfig,
    fallback_share,
    has_juniors,
    joined,
    next_in_line,
    share_of,
)
from shared.bc.throttle.shared_throttle import SharedThrottle

__all__ = [
    "HEARTBEAT_SECONDS",
    "CoordinationState",
    "CoordinationStore",
    "LowPriority",
    "Member",
    "Share",
    "SharedThrottle",
    "ThrottleConfig",
    "VersionedState",
    "fallback_share",
    "has_juniors",
    "joined",
    "next_in_line",
    "share_of",
]

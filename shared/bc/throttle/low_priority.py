"""`LowPriority`: a SharedThrottle seen through its low permits, for the change feed's BC reads (issue 22, point 6).

The sender takes any `Throttle` (shared/bc/sender.py); giving the feed's BC client this view instead of the
throttle itself is all it takes to put every read of the expansion and the reconciliation behind the jobs of the
same process, on the same budget (SharedThrottle's docstring, "Priority").
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from shared.bc.throttle.shared_throttle import SharedThrottle


@dataclass(frozen=True, slots=True)
class LowPriority:
    """The sender's Throttle: low permits of `throttle`; a pause (Retry-After) still stops every instance."""

    throttle: SharedThrottle

    def permit(self) -> AbstractAsyncContextManager[None]:
        """A low permit: only while no job's permit waits in this process, at most one slot at a time."""
        return self.throttle.permit(low=True)

    async def pause(self, seconds: float) -> None:
        """BC's Retry-After applies to everyone on the budget."""
        await self.throttle.pause(seconds)
